import pytest
from transformers import AutoTokenizer

from mimo_lite.config import PRESETS
from mimo_lite.data import ensure_corpus
from mimo_lite.chat import CHAT_TEMPLATE, SPECIAL_TOKENS, THINK_TOKENS, render_chat
from mimo_lite.tokenizer import ensure_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def tok(smoke_runs):
    return ensure_tokenizer("smoke", smoke_runs)


@pytest.fixture(scope="module")
def corpus(smoke_runs):
    return ensure_corpus("smoke", smoke_runs)


def roundtrip(tok, text):
    return tok.decode(tok(text, add_special_tokens=False)["input_ids"])


def test_every_document_kind_round_trips(tok, corpus):
    docs = corpus.documents["train"]
    by_source = {}
    for text, source in zip(docs["text"][:], docs["source"][:]):
        by_source.setdefault(source, []).append(text)
    assert {"stdlib_code", "stdlib_docstrings", "pydoc_topics", "math_chat", "math_textbook",
            "reasoning_math", "reasoning_code", "ads"} <= set(by_source)
    for source, texts in by_source.items():
        for text in texts[:20]:
            assert roundtrip(tok, text) == text, source


@pytest.mark.parametrize("text", [
    "héllo wörld — naïve café", "日本語のテキストと中文", "emoji 😀🚀 and Ωμέγα ∑ ∫ √2",
    "tabs\tand  double  spaces \n\n\n trailing ", "\u00a0non-breaking\u200bzero-width",
    "x = 1_000_000; y = 3.14e-10", "<|im_start|>user\nhi<|im_end|>\n<think>\nok\n</think>"])
def test_non_ascii_and_odd_whitespace_round_trip(tok, text):
    assert roundtrip(tok, text) == text


def test_special_and_think_tokens_are_single_ids(tok):
    for token in SPECIAL_TOKENS + THINK_TOKENS:
        ids = tok(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids) == [token]
        inside = tok(f"before{token}after", add_special_tokens=False)["input_ids"]
        assert ids[0] in inside
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|pad|>"
    # control tokens vanish with skip_special_tokens; the reasoning tags stay readable
    ids = tok("<|im_start|>a<think>b</think><|im_end|>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "a<think>b</think>"


def test_no_merge_spent_on_pieces_of_special_tokens(tok):
    pieces = [t for t in tok.get_vocab() if ("<|" in t or "|>" in t)]
    assert sorted(pieces) == sorted(SPECIAL_TOKENS)


def test_digits_are_one_per_token(tok):
    for token in tok.get_vocab():
        if any(c.isdigit() for c in token) and token not in SPECIAL_TOKENS + THINK_TOKENS:
            assert len(token) == 1, token
    assert tok.tokenize("12345") == ["1", "2", "3", "4", "5"]


def test_vocabulary_matches_the_model_and_loads_with_auto_tokenizer(tok, smoke_runs):
    assert len(tok) == PRESETS["smoke"]["vocab_size"]
    again = AutoTokenizer.from_pretrained(smoke_runs / "smoke" / "tokenizer")
    assert again("7 + 5 = 12")["input_ids"] == tok("7 + 5 = 12")["input_ids"]


MESSAGES = [
    {"role": "system", "content": "You are a careful solver."},
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "reasoning_content": "2 + 3 = 5.", "content": "\\boxed{5}"},
    {"role": "user", "content": "And 5 + 1?"},
]


def test_chat_template_renders_exactly_as_documented(tok):
    expected = ("<|im_start|>system\nYou are a careful solver.<|im_end|>\n"
                "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
                "<|im_start|>assistant\n<think>\n2 + 3 = 5.\n</think>\n\\boxed{5}<|im_end|>\n"
                "<|im_start|>user\nAnd 5 + 1?<|im_end|>\n"
                "<|im_start|>assistant\n")
    rendered = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert rendered == expected
    assert render_chat(MESSAGES, add_generation_prompt=True) == expected
    assert tok.chat_template == CHAT_TEMPLATE
    without_thinking = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert tok.apply_chat_template(without_thinking, tokenize=False) == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n")


def test_chat_template_turn_markers_are_single_tokens(tok):
    ids = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, return_dict=True)
    ids = ids["input_ids"]
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 5
    assert ids.count(tok.convert_tokens_to_ids("<|im_end|>")) == 4
    assert ids.count(tok.convert_tokens_to_ids("<think>")) == 1


def test_bad_chat_message_and_tiny_vocabulary_are_refused():
    with pytest.raises(ValueError, match="role"):
        render_chat([{"role": "robot", "content": "hi"}])
    with pytest.raises(ValueError, match="no room for merges"):
        train_tokenizer(["abc"], vocab_size=200)


def test_without_digit_splitting_numbers_merge(corpus):
    docs = corpus.documents["train"]
    texts = [t for t, d in zip(docs["text"][:], docs["domain"][:]) if d == "math"]
    plain = train_tokenizer(texts, 512, split_digits=False)
    split = train_tokenizer(texts, 512)
    numbers = [str(n) for n in range(10, 1000, 7)]
    assert all(len(split.tokenize(n)) == len(n) for n in numbers)
    assert sum(len(plain.tokenize(n)) < len(n) for n in numbers) > 0
