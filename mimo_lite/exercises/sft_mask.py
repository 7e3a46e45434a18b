"""Notebook 06's implementation exercise: the SFT loss mask (labels on the assistant's tokens only).

The reference is `mimo_lite.train.sft.encode`; the hidden conversations are tokenised by a small
byte-level BPE trained here on their own text (the kit's `train_tokenizer`, a fraction of a second).
"""

from __future__ import annotations

from functools import lru_cache

from ..chat import IM_END, render_chat
from ..tokenizer import train_tokenizer
from ..train.sft import IGNORE, encode
from .checking import Case, Mismatch, run_cases

CONVERSATIONS = [
    ("a system prompt, a question and a reply with a <think> block", [
        {"role": "system", "content": "You are a careful tutor."},
        {"role": "user", "content": "What is 12 + 30?"},
        {"role": "assistant", "reasoning_content": "12 + 30 = 42.", "content": "The answer is \\boxed{42}."}]),
    ("a question and a reply without reasoning", [
        {"role": "user", "content": "Write a function that doubles x."},
        {"role": "assistant", "content": "```python\ndef double(x):\n    return 2 * x\n```"}]),
    ("two exchanges: both assistant turns are trained", [
        {"role": "user", "content": "What is 7 times 6?"},
        {"role": "assistant", "reasoning_content": "7 * 6 = 42.", "content": "\\boxed{42}"},
        {"role": "user", "content": "And 42 minus 5?"},
        {"role": "assistant", "reasoning_content": "42 - 5 = 37.", "content": "\\boxed{37}"}]),
]


@lru_cache(maxsize=1)
def _tokenizer():
    texts = [render_chat(messages) for _, messages in CONVERSATIONS] * 3
    return train_tokenizer(texts, vocab_size=400, min_frequency=2)


def _roles(tokenizer, messages, n: int) -> list[str]:
    """What each token position is, for the explanation: 'user turn 1', 'assistant turn 2 header', …"""
    def length(turns, prompt=False):
        text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=prompt)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    roles, at = [""] * n, 0
    for i, m in enumerate(messages):
        end = length(messages[:i + 1])
        turn = f"{m['role']} turn {sum(x['role'] == m['role'] for x in messages[:i + 1])}"
        body = length(messages[:i], True) if m["role"] == "assistant" else at
        for t in range(at, end):
            roles[t] = f"the header of {turn} (`<|im_start|>assistant\\n`)" if t < body else turn
        at = end
    return roles


def check_sft_mask(fn):
    """Check `sft_labels(tokenizer, messages) -> list[int]` against `mimo_lite.train.sft.encode`.

    tokenizer: a transformers tokenizer with the kit's chat template; messages: a conversation,
    a list of {"role", "content"} turns (assistant turns may carry "reasoning_content").
    The token ids are `tokenizer(tokenizer.apply_chat_template(messages, tokenize=False),
    add_special_tokens=False)["input_ids"]`. Returns one label per token id: the id itself on
    every assistant reply — from just after `<|im_start|>assistant\\n` through its `<|im_end|>` —
    and -100 (ignored by the loss) everywhere else. No shift: the loss shifts the labels itself.
    """
    tokenizer = _tokenizer()
    end_id = tokenizer.convert_tokens_to_ids(IM_END)
    cases = []
    for name, messages in CONVERSATIONS:
        ids, labels = encode(tokenizer, messages, max_len=10_000)
        cases.append(Case(name, (tokenizer, messages), (labels, ids, _roles(tokenizer, messages, len(ids))), {}))

    def compare(got, expected):
        labels, ids, roles = expected
        if not isinstance(got, (list, tuple)) and hasattr(got, "tolist"):
            got = got.tolist()
        if not isinstance(got, (list, tuple)) or len(got) != len(labels):
            raise Mismatch(f"expected a list of {len(labels)} labels (one per token of the rendered "
                           f"conversation), got {type(got).__name__} of length "
                           f"{len(got) if hasattr(got, '__len__') else '?'}.")
        got = [int(v) for v in got]
        if got == labels:
            return
        if got[:-1] == labels[1:] or got[:-1] == ids[1:] or \
                got[:-1] == [IGNORE if l == IGNORE else ids[t + 1] for t, l in enumerate(labels[:-1])]:
            raise Mismatch("your labels are the *next* token ids: leave them unshifted, the loss "
                           "(shifted_cross_entropy) compares logits at t with labels at t + 1.")
        t = next(i for i, (a, b) in enumerate(zip(got, labels)) if a != b)
        token = tokenizer.convert_ids_to_tokens(ids[t])
        what = f"token {t} ({token!r}, part of {roles[t]})"
        if labels[t] == IGNORE:
            why = ("only the assistant's reply is trained; the prompt, the system text and the "
                   "chat headers are given, not predicted" if "header" in roles[t] or "assistant" not in roles[t]
                   else "it lies outside the assistant's reply")
            if ids[t] != end_id and t > 0 and ids[t - 1] == end_id:
                why = "the newline after `<|im_end|>` belongs to the template, not to the reply"
            raise Mismatch(f"{what} should be -100, you gave {got[t]}: {why}.")
        if ids[t] == end_id:
            raise Mismatch(f"{what} should be labelled {labels[t]} (the token itself), you gave "
                           f"{got[t]}: the closing `<|im_end|>` is trained, so the model learns to stop.")
        reply = [i for i, (r, l) in enumerate(zip(roles, labels)) if r == roles[t] and l != IGNORE]
        if got[t] == IGNORE and all(got[i] == IGNORE for i in reply) and any(g != IGNORE for g in got):
            why = ": every assistant turn is trained, not only the last."
        elif got[t] == IGNORE and t == reply[0]:
            why = ": the reply starts right after `<|im_start|>assistant\\n` (its `<think>` block included)."
        else:
            why = "."
        raise Mismatch(f"{what} should be labelled {labels[t]} (the token itself), you gave {got[t]}{why}")

    return run_cases("SFT loss mask", fn, cases, compare, "mimo_lite.train.sft.encode", hint="")
