import random

from mimo_lite.data.dedup import (THRESHOLD, deduplicate, exact_duplicates, near_duplicates,
                                  shingles)
from mimo_lite.data.documents import document
from mimo_lite.data.low_value import planted_copies
from mimo_lite.data.sources import pydoc_documents


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_planted_near_and_exact_duplicates_are_found_and_originals_kept():
    originals, _ = deduplicate(pydoc_documents(79))     # two reference sections are near-twins
    copies = planted_copies(originals, 20, 30, random.Random(0))
    kept, report = deduplicate(originals + copies)
    assert report["planted_exact_caught"] == 20
    assert report["planted_near_caught"] >= 28                 # MinHash is an estimate
    assert [d["text"] for d in kept[:len(originals)]] == [d["text"] for d in originals]
    assert len(kept) == len(originals) + 30 - report["planted_near_caught"]


def test_near_duplicates_respect_the_jaccard_threshold():
    rng = random.Random(1)
    base = [f"{rng.choice(['alpha', 'beta', 'gamma'])} {i} " + " ".join(
        rng.choice(["red", "green", "blue", "cyan", "pink", "gold"]) + str(rng.randrange(50))
        for _ in range(120)) for i in range(20)]
    edited = []
    for text in base:
        words = text.split()
        for i in rng.sample(range(len(words)), 3):     # 3 of ~120 words: J ≈ 0.86
            words[i] = "changed"
        edited.append(" ".join(words))
    found = near_duplicates(base + edited)
    assert found[:20] == [None] * 20                        # unrelated texts never merge
    for i, j in enumerate(found[20:]):
        truth = jaccard(base[i], edited[i])
        assert truth > THRESHOLD + 0.1 and j == i


def test_exact_duplicates_ignore_whitespace_only():
    texts = ["a b  c", "a b c\n", "a b C", "a b c"]
    assert exact_duplicates(texts) == [None, 0, None, 0]


def test_synthetic_reasoning_is_only_exactly_deduplicated():
    trace = "<think>\n" + " ".join(f"step {i} adds {i} and {i + 1}" for i in range(40))
    variant = trace.replace("step 7", "step seven")
    docs = [document(trace, "r", "synthetic_reasoning"),
            document(variant, "r", "synthetic_reasoning"),
            document(trace, "r", "synthetic_reasoning")]
    kept, report = deduplicate(docs)
    assert jaccard(trace, variant) > THRESHOLD
    assert len(kept) == 2 and report["exact_removed"] == 1 and report["near_removed"] == 0
    general = [{**d, "domain": "general"} for d in docs]
    assert len(deduplicate(general)[0]) == 1
