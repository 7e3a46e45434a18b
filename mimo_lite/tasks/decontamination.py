"""N-gram decontamination: does a problem's text already appear in a training corpus?

MiMo removes from its SFT data every query with a 16-gram overlap with the evaluation benchmarks,
and runs "global n-gram dedup and decontamination" on its RL problems (report §3.1, §3.2). Here:
hash every word n-gram of the problems once, then stream any corpus through and mark the problems
whose n-grams it contains. The corpus is read once and never held in memory, so the same function
serves a held-out split of a few hundred problems and a pretraining corpus of many gigabytes.
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


def ngram_overlap(texts: list[str], corpus: Iterable[str], n: int = 16) -> list[float]:
    """For each text, the fraction of its n-grams that occur somewhere in the corpus.

    A text shorter than n words counts as found when it occurs whole inside a corpus document.
    """
    grams = [ngrams(t, n) for t in texts]
    wanted = set().union(*grams) if grams else set()
    sizes = {min(n, len(words(t))) for t in texts} - {0}
    found = set()
    for document in corpus:
        w = words(document)
        for size in sizes:
            found.update(g for g in (hash(tuple(w[i:i + size])) for i in range(len(w) - size + 1))
                         if g in wanted)
    return [len(g & found) / len(g) if g else 0.0 for g in grams]


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
