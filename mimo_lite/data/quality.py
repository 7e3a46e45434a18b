"""Quality: heuristic rule filters, and the small learned tagger MiMo prefers to them.

The report (§2.1) notes that the heuristic filters common in web pipelines "wrongly drop" math
and code pages, and tags quality with small fine-tuned models instead. Here the rules are
document-level versions of widely used web-text filters (C4 and Gopher style); the tagger is a
logistic regression over hashed byte n-grams (a bag-of-n-grams model in torch), trained on
documents whose value is known. Notebook 01 compares the two on the same documents.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# --- heuristic rules: each returns True when it would drop the document --------------------

_WORD = re.compile(r"\S+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def too_short(text: str) -> bool:
    """Fewer than 50 words (Gopher)."""
    return len(_words(text)) < 50


def paragraphs_without_punctuation(text: str) -> bool:
    """Under half of the paragraphs end in terminal punctuation (C4's line rule, by paragraph).

    C4 keeps only lines that end like sentences; applied to paragraphs here, since wrapped prose
    breaks its sentences across lines."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return sum(p.endswith((".", "!", "?", '"', ":")) for p in paragraphs) < 0.5 * len(paragraphs)


def curly_bracket(text: str) -> bool:
    """Any '{' (C4 drops such pages as code or JavaScript)."""
    return "{" in text


def few_alphabetic_words(text: str) -> bool:
    """Under 80% of words contain a letter (Gopher)."""
    words = _words(text)
    return sum(any(c.isalpha() for c in w) for w in words) < 0.8 * len(words)


def odd_word_length(text: str) -> bool:
    """Mean word length outside 3–10 characters (Gopher)."""
    words = _words(text)
    mean = sum(map(len, words)) / max(len(words), 1)
    return not 3 <= mean <= 10


def repeated_bigram(text: str) -> bool:
    """The most frequent word bigram covers over 10% of the words (Gopher's repetition filter)."""
    words = [w.lower() for w in _words(text)]
    if len(words) < 20:
        return False
    top = Counter(zip(words, words[1:])).most_common(1)[0][1]
    return 2 * top > 0.1 * len(words)


def boilerplate_phrases(text: str) -> bool:
    """Mentions cookies, 'terms of use', 'lorem ipsum' or 'javascript' (C4)."""
    lower = text.lower()
    return any(p in lower for p in ("cookie", "terms of use", "lorem ipsum", "javascript"))


RULES = [too_short, paragraphs_without_punctuation, curly_bracket, few_alphabetic_words,
         odd_word_length, repeated_bigram, boilerplate_phrases]


def heuristic_verdict(text: str) -> str:
    """The name of the first rule that drops `text`, or "" when every rule keeps it."""
    return next((rule.__name__ for rule in RULES if rule(text)), "")


# --- the learned tagger ---------------------------------------------------------------------

BUCKETS = 1 << 18          # hashed feature space
NGRAMS = (4,)              # byte n-gram lengths
MAX_BYTES = 1024           # the tagger reads the start of each document


def ngram_counts(text: str, buckets: int = BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """The hashed byte n-grams of `text` (a polynomial rolling hash) and their shares."""
    b = np.frombuffer(text.encode("utf-8")[:MAX_BYTES], dtype=np.uint8).astype(np.uint64)
    ids = [np.zeros(1, dtype=np.uint64)]
    for n in NGRAMS:
        if len(b) >= n:
            h = np.full(len(b) - n + 1, n, dtype=np.uint64)
            for k in range(n):
                h = h * np.uint64(1_000_003) + b[k:len(b) - n + 1 + k]   # wraps mod 2^64
            ids.append(h % np.uint64(buckets))
    unique, counts = np.unique(np.concatenate(ids[1:] or ids), return_counts=True)
    return unique.astype(np.int64), (counts / counts.sum()).astype(np.float32)


@dataclass
class Bags:
    """A batch of bags of n-grams, flattened: feature ids, their shares, and whose they are."""
    ids: torch.Tensor        # (N,) hashed n-gram ids
    share: torch.Tensor      # (N,) share of that n-gram in its document
    doc: torch.Tensor        # (N,) index of the document
    n_docs: int

    @classmethod
    def of(cls, texts: list[str]) -> "Bags":
        grams = [ngram_counts(t) for t in texts]
        return cls(torch.from_numpy(np.concatenate([g[0] for g in grams])),
                   torch.from_numpy(np.concatenate([g[1] for g in grams])),
                   torch.cat([torch.full((len(g[0]),), i) for i, g in enumerate(grams)]),
                   len(texts))


class QualityTagger(nn.Module):
    """P(high value | text) = σ(b + Σ_g share(g) · w[g]) over the text's hashed n-grams g."""

    def __init__(self, buckets: int = BUCKETS):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(buckets))
        self.b = nn.Parameter(torch.zeros(1))

    def forward(self, bags: Bags) -> torch.Tensor:                      # (n_docs,) logits
        terms = self.w.index_select(0, bags.ids) * bags.share               # share(g) · w[g]
        return torch.zeros(bags.n_docs).index_add(0, bags.doc, terms) + self.b

    @torch.no_grad()
    def score(self, texts: list[str], batch: int = 1024) -> np.ndarray:
        """P(high value) for each text."""
        return np.concatenate([torch.sigmoid(self(Bags.of(texts[i:i + batch]))).numpy()
                               for i in range(0, len(texts), batch)] or [np.zeros(0)])


def train_tagger(texts: list[str], high_value: list[bool], steps: int = 40, seed: int = 0,
                 lr: float = 0.5) -> QualityTagger:
    """Fit the tagger by full-batch weighted cross-entropy; both classes weigh the same in total."""
    y = torch.tensor(high_value, dtype=torch.float32)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("The quality tagger needs labelled examples of both high- and low-value "
                         "documents: raise data.tagger_labelled or data.low_value_docs.")
    weights = torch.where(y > 0, len(y) / (2 * n_pos), len(y) / (2 * n_neg))
    torch.manual_seed(seed)
    bags, model = Bags.of(texts), QualityTagger()
    opt = torch.optim.Adagrad(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy_with_logits(model(bags), y, weight=weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model
