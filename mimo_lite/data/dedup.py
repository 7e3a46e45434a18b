"""Global deduplication: exact hashing, then MinHash near-duplicate detection (report §2.1).

Exact: two documents are the same when their whitespace-normalised texts hash alike (SHA-1).
Near: the Jaccard similarity of two documents' word-3-gram sets, J(A, B) = |A ∩ B| / |A ∪ B|, is
estimated by MinHash — the share of random hash functions on which both sets have the same
minimum — and locality-sensitive hashing (LSH) over bands of those minima finds the candidate
pairs with J above a threshold without comparing every pair. `datasketch` implements both.
The first document of each group is kept; later copies are removed.

MiMo runs MinHash "across all web dumps"; synthetic reasoning data is generated, not crawled,
and its templated traces would look alike to MinHash, so it only goes through exact dedup.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import Counter

from datasketch import MinHash, MinHashLSH

THRESHOLD = 0.7      # estimated Jaccard above which two documents count as near-duplicates
NUM_PERM = 128       # hash functions per MinHash signature (error of J ≈ 1/sqrt(NUM_PERM))
NGRAM = 3            # shingles are word 3-grams
NEAR_DEDUP_DOMAINS = ("general", "math", "code")


def normalized(text: str) -> str:
    return " ".join(text.split())


def exact_duplicates(texts: list[str]) -> list[int | None]:
    """For each text, the index of an earlier identical text (after whitespace), else None."""
    first: dict[bytes, int] = {}
    out = []
    for i, text in enumerate(texts):
        key = hashlib.sha1(normalized(text).encode()).digest()
        out.append(first.get(key))
        first.setdefault(key, i)
    return out


def shingles(text: str, n: int = NGRAM) -> set[bytes]:
    words = re.findall(r"\w+|[^\w\s]", text.lower())
    return {" ".join(words[i:i + n]).encode() for i in range(max(1, len(words) - n + 1))}


def _crc32(data: bytes) -> int:
    return zlib.crc32(data)        # 32-bit hash of a shingle: fast, stable across runs


def signatures(texts: list[str], num_perm: int = NUM_PERM, seed: int = 1) -> list[MinHash]:
    return MinHash.bulk([shingles(t) for t in texts], num_perm=num_perm, seed=seed,
                        hashfunc=_crc32)


def near_duplicates(texts: list[str], threshold: float = THRESHOLD, num_perm: int = NUM_PERM,
                    skip: list[bool] | None = None) -> list[int | None]:
    """For each text, the index of an earlier text with estimated Jaccard ≥ threshold, else None.

    Texts marked in `skip` (already removed as exact copies) are neither checked nor indexed.
    """
    todo = [i for i in range(len(texts)) if not (skip and skip[i])]
    sigs = dict(zip(todo, signatures([texts[i] for i in todo], num_perm)))
    # Bands favour recall (J = 0.86 is a candidate 99.9% of the time); candidates are confirmed
    # with the MinHash estimate, so extra candidates cost only a comparison.
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.2, 0.8))
    out: list[int | None] = [None] * len(texts)
    for i in todo:
        # LSH returns candidates likely above the threshold; confirm with the MinHash estimate.
        out[i] = next((j for j in sorted(lsh.query(sigs[i]))
                       if sigs[i].jaccard(sigs[j]) >= threshold), None)
        if out[i] is None:
            lsh.insert(i, sigs[i])
    return out


def deduplicate(docs: list[dict], threshold: float = THRESHOLD) -> tuple[list[dict], dict]:
    """Remove exact then near duplicates; returns the kept documents and what was removed.

    The report counts removals per source, how many planted copies were caught, and keeps a few
    (removed, kept) pairs to look at.
    """
    texts = [d["text"] for d in docs]
    exact = exact_duplicates(texts)
    near = near_duplicates(texts, threshold, skip=[e is not None or d["domain"] not in
                                                   NEAR_DEDUP_DOMAINS for d, e in zip(docs, exact)])
    kept = [d for d, e, n in zip(docs, exact, near) if e is None and n is None]
    planted = Counter(d["planted"] for d in docs if d["planted"])
    report = {
        "documents_in": len(docs), "documents_out": len(kept),
        "exact_removed": sum(e is not None for e in exact),
        "near_removed": sum(n is not None for n in near),
        "exact_removed_by_source": dict(Counter(d["source"] for d, e in zip(docs, exact)
                                                if e is not None)),
        "near_removed_by_source": dict(Counter(d["source"] for d, n in zip(docs, near)
                                               if n is not None)),
        "planted_exact": planted["exact"], "planted_near": planted["near"],
        "planted_exact_caught": sum(d["planted"] == "exact" and (e is not None or n is not None)
                                    for d, e, n in zip(docs, exact, near)),
        "planted_near_caught": sum(d["planted"] == "near" and (e is not None or n is not None)
                                   for d, e, n in zip(docs, exact, near)),
        "unplanted_near_removed": sum(not d["planted"] and n is not None
                                      for d, n in zip(docs, near)),
        "examples": [{"removed": docs[i]["text"][:300], "kept": docs[j]["text"][:300],
                      "source": docs[i]["source"], "planted": docs[i]["planted"]}
                     for i, j in _first_per_source(docs, near)],
    }
    return kept, report


def _first_per_source(docs: list[dict], near: list[int | None]) -> list[tuple[int, int]]:
    """One (removed, kept) near-duplicate pair per source and planting, to look at."""
    seen, pairs = set(), []
    for i, j in enumerate(near):
        key = (docs[i]["source"], docs[i]["planted"])
        if j is not None and key not in seen:
            seen.add(key)
            pairs.append((i, j))
    return pairs
