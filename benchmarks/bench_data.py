"""Corpus + tokenizer build time, and MinHash dedup against exact all-pairs Jaccard.

    python benchmarks/bench_data.py                 # toy profile, fresh build in a temporary folder
    python benchmarks/bench_data.py --profile smoke --pairs 1000

1. Builds the profile's corpus, tokenizer and packed stage rows from scratch (nothing cached)
   and prints the seconds of each step; the toy budget is 3 minutes on 2 CPU cores.
2. On N documents of the crawled-like domains (10% of them planted near copies), finds the
   near duplicates twice in the same process: exactly (Jaccard of every pair of word-3-gram
   sets, quadratic) and with the pipeline's MinHash LSH. Prints both times, their ratio, and how
   many of the exact answer's duplicates LSH found.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import tempfile
import time
from pathlib import Path

from mimo_lite.artifacts import build_info
from mimo_lite.data import ensure_corpus, ensure_packed, packed_counts
from mimo_lite.data.dedup import NEAR_DEDUP_DOMAINS, THRESHOLD, near_duplicates, shingles
from mimo_lite.data.low_value import planted_copies
from mimo_lite.tokenizer import ensure_tokenizer


def build(profile: str, root: Path) -> dict:
    t0 = time.perf_counter()
    corpus = ensure_corpus(profile, root)
    ensure_tokenizer(profile, root)
    packed = ensure_packed(profile, root)
    wall = time.perf_counter() - t0
    steps = {f"corpus: {k}": v for k, v in corpus.report["seconds"].items()}
    steps["tokenizer"] = build_info(root / profile / "tokenizer")["seconds"]
    steps["tokenize + pack"] = build_info(packed)["seconds"]
    tokens = {stage: sum(c["tokens"] for c in per.values())
              for stage, per in packed_counts(profile, root).items()}
    return {"corpus": corpus, "steps": steps, "wall": wall, "tokens": tokens}


def dedup_comparison(texts: list[str]) -> dict:
    t0 = time.perf_counter()
    sets = [shingles(t) for t in texts]
    exact = {(i, j) for i, j in itertools.combinations(range(len(sets)), 2)
             if len(sets[i] & sets[j]) >= THRESHOLD * len(sets[i] | sets[j])}
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = near_duplicates(texts)
    t_lsh = time.perf_counter() - t0
    flagged = {j for j, match in enumerate(found) if match is not None}
    # a document is a true duplicate when some earlier document is within the threshold
    truly = {j for _, j in exact}
    return {"exact_s": t_exact, "lsh_s": t_lsh, "true_duplicates": len(truly),
            "lsh_flagged": len(flagged), "lsh_correct": len(flagged & truly)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--pairs", type=int, default=2000, help="documents for the dedup comparison")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        result = build(args.profile, Path(tmp))
        for step, seconds in result["steps"].items():
            print(f"  {step:22s} {seconds:7.1f} s")
        print(f"build wall time {result['wall']:.1f} s; packed tokens per stage: {result['tokens']}")
        docs = [d for d in result["corpus"].documents["train"] if d["domain"] in NEAR_DEDUP_DOMAINS]
        originals = random.Random(0).sample(docs, min(len(docs), args.pairs - args.pairs // 10))
        copies = planted_copies(originals, 0, args.pairs // 10, random.Random(1))
        texts = [d["text"] for d in originals + copies]
    d = dedup_comparison(texts)
    print(f"near-duplicate search on {len(texts)} documents: exact all-pairs {d['exact_s']:.1f} s, "
          f"MinHash LSH {d['lsh_s']:.2f} s, ratio {d['exact_s'] / d['lsh_s']:.0f}x; "
          f"LSH flagged {d['lsh_flagged']}, of which {d['lsh_correct']} of the "
          f"{d['true_duplicates']} true duplicates")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
