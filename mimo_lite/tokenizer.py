"""The kit's tokenizer: byte-level BPE with one token per digit, ChatML turns and <think> tags.

MiMo-7B uses Qwen2's tokenizer (vocabulary 151,680; facts file §1.1): byte-level BPE, so any
UTF-8 text round-trips; digits split one per token, so every number is spelled digit by digit
the same way wherever it appears; ChatML special tokens for chat turns. The kit trains the same
kind of tokenizer on its own corpus, with the vocabulary of the profile's model.
The chat format it renders lives in `chat.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from .artifacts import one_builder
from .chat import CHAT_TEMPLATE, IM_END, PAD, SPECIAL_TOKENS, THINK_TOKENS

_SPECIAL_RE = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS + THINK_TOKENS))


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
                    split_digits: bool = True, max_length: int = 32768):
    """Train a byte-level BPE on `texts`; returns a transformers fast tokenizer.

    The vocabulary is 256 byte symbols + special and think tokens + merges, `vocab_size` in all
    (fewer if the text runs out of pairs seen `min_frequency` times). `split_digits=False` trains
    the contrast tokenizer of notebook 02, whose merges glue digits into arbitrary chunks.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    reserved = 256 + len(SPECIAL_TOKENS) + len(THINK_TOKENS)
    if vocab_size <= reserved:
        raise ValueError(f"vocab_size={vocab_size} leaves no room for merges: byte-level BPE "
                         f"needs more than {reserved} ids (256 bytes + special tokens).")
    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                  byte_level]) if split_digits else byte_level)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
        special_tokens=SPECIAL_TOKENS + THINK_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # The trainer does not cut special tokens out of raw text: cut them here, or merges would
    # be spent on pieces such as "<|im_en".
    tok.train_from_iterator((piece for text in texts for piece in _SPECIAL_RE.split(text)),
                            trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD,
                                   model_max_length=max_length)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def bytes_per_token(tokenizer, texts: list[str]) -> float:
    """Compression: UTF-8 bytes of `texts` per token the tokenizer spends on them."""
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    encoded = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    n_tokens = sum(len(ids) for ids in encoded)
    return n_bytes / max(n_tokens, 1)


def tokenizer_fingerprint(profile) -> str:
    """What decides the tokenizer: the corpus, the `tokenizer` section, the model's vocabulary
    size and context, and FORMAT["tokenizer"] (bumped when CHAT_TEMPLATE or training changes)."""
    from .artifacts import FORMAT, fingerprint
    from .data.corpus import corpus_fingerprint
    from .profile import as_profile

    profile = as_profile(profile)
    model = profile.model.config()
    return fingerprint("tokenizer", FORMAT["tokenizer"], corpus_fingerprint(profile), profile.tokenizer,
                       model.vocab_size, model.max_position_embeddings)


@one_builder("tokenizer")
def ensure_tokenizer(profile, runs_root: str | Path | None = None):
    """Build or load `runs/<profile>/tokenizer/` (loadable with `AutoTokenizer.from_pretrained`).

    Trained on the training split of `ensure_corpus(profile)` (documents in a seeded order, up
    to `profile.tokenizer.train_chars` characters), with `vocab_size` equal to the profile
    model's. Rebuilt when the corpus or the tokenizer settings change.
    """
    import tokenizers
    from transformers import AutoTokenizer

    from .artifacts import building, current, runs_dir
    from .data.corpus import ensure_corpus
    from .profile import as_profile

    profile = as_profile(profile)
    corpus = ensure_corpus(profile, runs_root)
    model = profile.model.config()
    folder = runs_dir(profile.name, runs_root) / "tokenizer"
    digest = tokenizer_fingerprint(profile)
    if not current(folder, digest):
        print(f"[mimo-lite] training the {model.vocab_size}-token BPE tokenizer -> {folder}",
              flush=True)
        train = corpus.documents["train"].shuffle(seed=profile.seed)
        with building(folder, digest, vocab_size=model.vocab_size,
                      tokenizers=tokenizers.__version__) as tmp:
            tok = train_tokenizer(_first_chars(train["text"][:], profile.tokenizer.train_chars),
                                  model.vocab_size, profile.tokenizer.min_frequency,
                                  max_length=model.max_position_embeddings)
            tok.save_pretrained(tmp)
    return AutoTokenizer.from_pretrained(folder)


def _first_chars(texts: Iterable[str], budget: int):
    for text in texts:
        if budget <= 0:
            return
        yield text[:budget]
        budget -= len(text)
