"""The corpus build: sources → admission → dedup → decontamination → quality tags → splits, as Arrow.

`ensure_corpus(profile)` returns the corpus of `runs/<profile>/corpus/`, building it first when
it is missing or was built from another config. The documents are a `datasets.DatasetDict` with
splits `train` and `heldout` (a share of each domain, for evaluation) and columns

    text, source, domain, low_value (planted label), planted ("", "exact", "near"),
    quality (tagger's P(high value)), heuristic (first rule that would drop it, or ""),
    labelled (True for the documents the tagger learned from)

and `report` holds every figure of the build (sizes, skips, dedup, documents removed by
decontamination, filter and tagger results).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import (FORMAT, building, current, fingerprint, one_builder, quiet_datasets,
                         runs_dir, write_json)
from ..profile import DOMAINS, DataSection, as_profile
from ..tasks.decontamination import contaminated
from ..tasks.problems import heldout_texts, suite_digest
from .dedup import deduplicate
from .documents import admit
from .low_value import low_value_documents, planted_copies, sentences_of
from .quality import heuristic_verdict, train_tagger
from .reasoning import reasoning_documents
from .sources import code_documents, docstring_documents, pydoc_documents, stdlib_files
from .worked_math import math_documents

KEEP = 0.5        # the tagger keeps a document when P(high value) ≥ KEEP
NGRAM = 16        # a document sharing a 16-gram with a held-out problem is removed (report §3.1)


@dataclass
class Corpus:
    path: Path
    fingerprint: str
    documents: "datasets.DatasetDict"   # noqa: F821  (train, heldout)
    report: dict


def collect(data: DataSection, seed: int) -> tuple[list[dict], dict]:
    """Every source's documents through the admission gate, then the planted copies."""
    rng = random.Random(seed)
    modules = stdlib_files(data.docstring_modules, rng, tests=False)
    prose, unparsable = docstring_documents(modules)
    prose += pydoc_documents(data.pydoc_topics)
    raw = (code_documents(stdlib_files(data.code_files, rng)) + prose + math_documents(data.math_docs, rng)
           + reasoning_documents(data.reasoning_docs, rng)
           + low_value_documents(data.low_value_docs, rng,
                                 sentences_of([d["text"] for d in prose])))
    docs, skipped = admit(raw, data.max_doc_chars)
    copies = planted_copies(docs, data.exact_copies, data.near_copies, rng)
    return docs + copies, {"generated_by_source": dict(Counter(d["source"] for d in raw)),
                           "admission": dict(skipped), "unparsable_modules": unparsable,
                           "planted_copies": len(copies)}


def tag_quality(docs: list[dict], data: DataSection, seed: int) -> dict:
    """Add `heuristic`, `labelled` and `quality` to each document; returns the comparison.

    The tagger learns from `data.tagger_labelled` documents: a third low-value (when there are
    enough), the rest high-value in equal numbers per domain, so that it learns value rather
    than topic. It is scored, like the rules, on all the other documents.
    """
    rng = random.Random(seed + 1)
    low = [i for i, d in enumerate(docs) if d["low_value"]]
    labelled = rng.sample(low, min(len(low) // 2, data.tagger_labelled // 3))
    quota = (data.tagger_labelled - len(labelled)) // len(DOMAINS)
    for domain in DOMAINS:
        high = [i for i, d in enumerate(docs) if not d["low_value"] and d["domain"] == domain]
        labelled += rng.sample(high, min(len(high) // 2, quota))
    train = sorted(labelled)
    labelled = set(labelled)
    tagger = train_tagger([docs[i]["text"] for i in train],
                          [not docs[i]["low_value"] for i in train], seed=seed)
    scores = tagger.score([d["text"] for d in docs])
    for i, d in enumerate(docs):
        d["heuristic"] = heuristic_verdict(d["text"])
        d["labelled"] = i in labelled
        d["quality"] = float(scores[i])
    return compare_filters([d for d in docs if not d["labelled"]])


def compare_filters(docs: list[dict]) -> dict:
    """Keep rates of the rules and of the tagger per group (domains, and planted low-value)."""
    def group(d):
        return "low_value" if d["low_value"] else d["domain"]

    table = {}
    for name in [*DOMAINS, "low_value"]:
        members = [d for d in docs if group(d) == name]
        if members:
            table[name] = {
                "documents": len(members),
                "heuristics_keep": sum(not d["heuristic"] for d in members) / len(members),
                "tagger_keep": sum(d["quality"] >= KEEP for d in members) / len(members),
                "rules_fired": dict(Counter(d["heuristic"] for d in members if d["heuristic"])),
            }

    def confusion(kept):
        return {truth: {"kept": sum(kept(d) for d in docs if d["low_value"] == is_low),
                        "dropped": sum(not kept(d) for d in docs if d["low_value"] == is_low)}
                for truth, is_low in (("high_value", False), ("low_value", True))}

    return {"evaluated_on": len(docs), "by_group": table,
            "confusion_heuristics": confusion(lambda d: not d["heuristic"]),
            "confusion_tagger": confusion(lambda d: d["quality"] >= KEEP)}


def heldout_split(docs: list[dict], fraction: float, seed: int) -> list[bool]:
    """Per domain, `fraction` of its tagger-kept unlabelled documents (at least one) held out."""
    rng = random.Random(seed + 2)
    held = [False] * len(docs)
    for domain in DOMAINS:
        pool = [i for i, d in enumerate(docs) if d["domain"] == domain and not d["labelled"]
                and d["quality"] >= KEEP]
        if len(pool) >= 2:
            for i in rng.sample(pool, max(1, round(fraction * len(pool)))):
                held[i] = True
    return held


def decontaminate(docs: list[dict], evaluation: list[str], n: int = NGRAM) -> tuple[list[dict], dict]:
    """Drop every document that shares a word n-gram with an evaluation text (the held-out
    problems), as MiMo decontaminates against its benchmarks (report §3.1–3.2)."""
    hit = contaminated((d["text"] for d in docs), evaluation, n)
    removed = [d for d, h in zip(docs, hit) if h]
    return [d for d, h in zip(docs, hit) if not h], {
        "n": n, "evaluation_texts": len(evaluation), "documents_in": len(docs),
        "removed": len(removed), "removed_by_domain": dict(Counter(d["domain"] for d in removed)),
        "removed_by_source": dict(Counter(d["source"] for d in removed)),
        "example": removed[0]["text"][:300] if removed else ""}


def build(data: DataSection, seed: int, evaluation: list[str] = ()) -> tuple["datasets.DatasetDict", dict]:  # noqa: F821
    from datasets import Dataset, DatasetDict

    seconds, t = {}, time.perf_counter()
    docs, report = collect(data, seed)
    seconds["sources"], t = time.perf_counter() - t, time.perf_counter()
    docs, report["dedup"] = deduplicate(docs)
    seconds["dedup"], t = time.perf_counter() - t, time.perf_counter()
    docs, report["decontamination"] = decontaminate(docs, list(evaluation))
    seconds["decontamination"], t = time.perf_counter() - t, time.perf_counter()
    report["quality"] = tag_quality(docs, data, seed)
    seconds["quality"], t = time.perf_counter() - t, time.perf_counter()
    held = heldout_split(docs, data.heldout_fraction, seed)
    splits = DatasetDict({
        "train": Dataset.from_list([d for d, h in zip(docs, held) if not h]),
        "heldout": Dataset.from_list([d for d, h in zip(docs, held) if h])})
    report["documents"] = {name: dict(Counter(split["domain"][:])) for name, split in splits.items()}
    report["chars"] = {name: {dom: sum(len(d["text"]) for d, h in zip(docs, held)
                                       if d["domain"] == dom and h == (name == "heldout"))
                              for dom in DOMAINS} for name in splits}
    seconds["splits"] = time.perf_counter() - t
    report["seconds"] = seconds
    report["python"] = sys.version.split()[0]     # the stdlib's text differs a little between releases
    return splits, report


def corpus_fingerprint(profile) -> str:
    """What decides the corpus: the profile's `data` section, its seed, the held-out problems it
    is decontaminated against, and FORMAT["corpus"]. Not the Python version: the standard-library
    files it reads are a fixed list (`sources.py`), so a corpus built on another release is reused."""
    profile = as_profile(profile)
    return fingerprint("corpus", FORMAT["corpus"], profile.data, profile.seed, suite_digest(profile))


@one_builder("corpus")
def ensure_corpus(profile, runs_root: str | Path | None = None) -> Corpus:
    """Build or load `runs/<profile>/corpus/` (see the module docstring for what it holds).

    Documents that share a 16-gram with a held-out problem of the profile (notebook 07's suites,
    generated in memory) are removed. See `corpus_fingerprint` for what decides a rebuild.
    """
    from datasets import load_from_disk

    profile = as_profile(profile)
    folder = runs_dir(profile.name, runs_root) / "corpus"
    digest = corpus_fingerprint(profile)
    if not current(folder, digest):
        print(f"[mimo-lite] building the {profile.name} corpus -> {folder}", flush=True)
        with building(folder, digest) as tmp, quiet_datasets():
            splits, report = build(profile.data, profile.seed, heldout_texts(profile))
            splits.save_to_disk(str(tmp / "documents"))
            write_json(tmp / "report.json", report)
    return Corpus(folder, digest, load_from_disk(str(folder / "documents")),
                  json.loads((folder / "report.json").read_text()))
