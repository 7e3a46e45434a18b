"""N-gram decontamination: does a problem's text already appear in a training corpus?

MiMo removes from its SFT data every query with a 16-gram overlap with the evaluation benchmarks,
and runs "global n-gram dedup and decontamination" on its RL problems (report §3.1, §3.2). Here:
hash every word n-gram of the problems once, then stream any corpus through and mark the problems
whose n-grams it contains. The corpus is read once and never held in memory, so the same function
serves a held-out split of a few hundred problems and a pretraining corpus of many gigabytes.
`contaminated` turns the check around, per document: the corpus build (notebook 01) drops every
document that shares a 16-gram with a held-out problem, so that evaluation measures what the
model learned rather than what it read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(text: str, n: int) -> set[int]:
    """Hashes of the lower-cased word n-grams; a text shorter than n words is one gram, itself."""
    w = words(text)
    size = min(n, len(w))
    return {hash(tuple(w[i:i + size])) for i in range(len(w) - size + 1)} if w else set()


class NgramIndex:
    """The word n-grams of some texts, hashed once; `found_in(document)` lists those it contains.

    A text shorter than n words is one gram, itself: it is found when it occurs whole.
    """

    def __init__(self, texts: list[str], n: int = 16):
        self.grams = [ngrams(t, n) for t in texts]
        self.wanted = set().union(*self.grams)
        self.sizes = sorted({min(n, len(words(t))) for t in texts} - {0})

    def found_in(self, document: str) -> set[int]:
        w = words(document)
        return {g for size in self.sizes
                for g in (hash(tuple(w[i:i + size])) for i in range(len(w) - size + 1))
                if g in self.wanted}


def ngram_overlap(texts: list[str], corpus: Iterable[str], n: int = 16) -> list[float]:
    """For each text, the fraction of its n-grams that occur somewhere in the corpus.

    A text shorter than n words counts as found when it occurs whole inside a corpus document.
    """
    index = NgramIndex(texts, n)
    found = set()
    for document in corpus:
        found |= index.found_in(document)
    return [len(g & found) / len(g) if g else 0.0 for g in index.grams]


def contaminated(documents: Iterable[str], texts: list[str], n: int = 16) -> list[bool]:
    """For each document, whether it shares an n-gram with any of `texts` (the evaluation set):
    the documents to drop so that `ngram_overlap(texts, documents, n)` is all zeros.

    >>> contaminated(["a b c d e", "a b x d e"], ["b c d"], n=3)
    [True, False]
    """
    index = NgramIndex(texts, n)
    return [bool(index.found_in(d)) for d in documents]


def decontamination_report(problems: list[dict], corpora: dict[str, Iterable[str] | None],
                           n: int = 16) -> dict:
    """Per corpus: how many problems share at least one n-gram with it, and which ones.

    `corpora` maps a name to an iterable of texts, or to None when that corpus is not built yet.
    """
    prompts = [p["prompt"] for p in problems]
    report = {"n": n, "problems": len(problems), "corpora": {}}
    for name, texts in corpora.items():
        if texts is None:
            report["corpora"][name] = {"status": "not available"}
            continue
        overlap = ngram_overlap(prompts, texts, n)
        hit = [p["id"] for p, o in zip(problems, overlap) if o > 0]
        report["corpora"][name] = {
            "status": "checked", "contaminated": len(hit),
            "fraction": round(len(hit) / max(1, len(problems)), 4),
            "mean_overlap": round(sum(overlap) / max(1, len(overlap)), 4), "examples": hit[:5]}
    return report


def corpus_texts(path: str | Path) -> Iterable[str] | None:
    """The `text` column of a saved `datasets` corpus (every split), or None if it is not there."""
    path = Path(path)
    if not path.exists():
        return None
    import datasets

    data = datasets.load_from_disk(str(path))
    splits = data.values() if isinstance(data, datasets.DatasetDict) else [data]
    return (row["text"] for split in splits for row in split.select_columns(["text"]))
