"""The three-stage mixture: packed token streams whose domain shares follow the stage's weights.

MiMo pretrains in three stages (report §2.1): stage 1 on everything but synthetic reasoning,
with low-value content down-sampled; stage 2 with math and code raised to about 70%; stage 3
adding about 10% synthetic reasoning and a longer context (8,192 → 32,768 in the report). Here
each stage is declared in the profile as token shares per domain, a sequence length and the
share of low-value documents kept.

Packing (`ensure_packed`): the training documents are tokenized with `datasets.map`; for each
stage and domain the selected documents are shuffled, joined with `<|endoftext|>` after each,
and cut into rows of `seq_len` tokens (again `datasets.map`, batched). Every row belongs to one
domain, so a stream's token shares are its row shares.

Sampling (`StageSampler`): position i of the stream is a row of the domain chosen by smooth
weighted round-robin — every domain earns its weight in credit each step, the richest emits a
row and pays 1 — which keeps each domain's count within one row of weight × i at every i. A
domain's rows are visited in a seeded random order, reshuffled for each pass over them, so the
stream is a pure function of (seed, position): reproducible, and resumable from a position.

The control (`CONTROL`, notebook 04) is packed beside the stages: after stage 1 it reads one flat
mixture with stages 2–3's average domain shares at stage 2's context, so that the curriculum and
its control see the same domains for the same tokens and differ only in order and context.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..artifacts import (FORMAT, building, current, fingerprint, one_builder, quiet_datasets,
                         runs_dir, write_json)
from ..profile import DOMAINS, StageSection, as_profile
from .corpus import KEEP, ensure_corpus

STAGES = (1, 2, 3)
CONTROL = "control"   # the control run's flat mixture (notebook 04), packed beside the stages


def control_stage(profile) -> StageSection:
    """The control's one mixture after stage 1: stages 2 and 3's domain shares averaged over
    their token budgets, at stage 2's context and low-value share.

    The control then reads every domain the curriculum reads, for the same tokens, so comparing
    the two measures the ordering (and stage 3's longer context), not exposure to a domain.
    """
    profile = as_profile(profile)
    _, f2, f3 = profile.pretrain.stage_fractions
    s2, s3 = profile.data.stage(2), profile.data.stage(3)
    weights = {d: (f2 * s2.weights.get(d, 0.0) + f3 * s3.weights.get(d, 0.0)) / (f2 + f3)
               for d in DOMAINS}
    return StageSection(weights, s2.seq_len, s2.low_value_keep)


def section(profile, stage) -> StageSection:
    """The data section of stage 1, 2 or 3, or of the control (`CONTROL`)."""
    return control_stage(profile) if stage == CONTROL else as_profile(profile).data.stage(stage)


def stage_documents(domains: list[str], quality: list[float], stage: StageSection,
                    rng: random.Random) -> dict[str, list[int]]:
    """Indices of the documents each domain contributes to a stage, in shuffled order.

    Documents the tagger scores below KEEP are low-value: each stays with probability
    `stage.low_value_keep` (MiMo down-samples them in stage 1 rather than dropping them all).
    """
    chosen: dict[str, list[int]] = {d: [] for d, w in stage.weights.items() if w > 0}
    for i, (domain, q) in enumerate(zip(domains, quality)):
        if domain in chosen and (q >= KEEP or rng.random() < stage.low_value_keep):
            chosen[domain].append(i)
    for indices in chosen.values():
        rng.shuffle(indices)
    return chosen


def pack(batch: dict, seq_len: int, eos_id: int) -> dict:
    """`datasets.map` function: join documents with EOS after each, cut rows of `seq_len`.

    The tail that does not fill a row is dropped (at most seq_len - 1 tokens per map batch).
    """
    stream = [t for ids in batch["input_ids"] for t in (*ids, eos_id)]
    rows = len(stream) // seq_len
    return {"input_ids": [stream[r * seq_len:(r + 1) * seq_len] for r in range(rows)]}


def packed_fingerprint(profile) -> str:
    """What decides the packed rows: the corpus, the tokenizer, the stages' mixtures, the seed
    and FORMAT["packed"]."""
    from ..tokenizer import tokenizer_fingerprint

    profile = as_profile(profile)
    stages = {(n if n == CONTROL else f"stage{n}"): section(profile, n) for n in (*STAGES, CONTROL)}
    return fingerprint("packed", FORMAT["packed"], tokenizer_fingerprint(profile), stages, profile.seed)


@one_builder("packed")
def ensure_packed(profile, runs_root: str | Path | None = None) -> Path:
    """Build or load `runs/<profile>/corpus/packed/`: per stage and domain, rows of tokens.

    Layout: `stage{1,2,3}/{domain}/` and `control/{domain}/` (Arrow, column `input_ids` of
    length seq_len) and `heldout/` (the held-out documents tokenized, with `domain`);
    `counts.json` holds the rows and tokens per stage and domain. Rebuilt when the corpus,
    tokenizer or stages change.
    """
    from datasets import Features, Sequence, Value

    from ..chat import ENDOFTEXT
    from ..tokenizer import ensure_tokenizer

    profile = as_profile(profile)
    corpus = ensure_corpus(profile, runs_root)
    tokenizer = ensure_tokenizer(profile, runs_root)
    folder = corpus.path / "packed"
    stages = {(n if n == CONTROL else f"stage{n}"): section(profile, n) for n in (*STAGES, CONTROL)}
    digest = packed_fingerprint(profile)
    if current(folder, digest):
        return folder
    print(f"[mimo-lite] tokenizing and packing the {profile.name} corpus -> {folder}", flush=True)
    eos = tokenizer.convert_tokens_to_ids(ENDOFTEXT)

    def tokenize(split):
        return split.map(lambda b: {"input_ids": tokenizer(b["text"], add_special_tokens=False,
                                                         verbose=False)["input_ids"]},
                         batched=True, batch_size=500, keep_in_memory=True,
                         remove_columns=[c for c in split.column_names
                                         if c not in ("domain", "quality")])

    counts = {}
    with building(folder, digest) as tmp, quiet_datasets():
        train = tokenize(corpus.documents["train"])
        for number, (name, stage) in enumerate(stages.items(), 1):     # the control is number 4
            rng = random.Random(profile.seed * 1000 + number)
            chosen = stage_documents(train["domain"][:], train["quality"][:], stage, rng)
            counts[name] = {}
            for domain, indices in chosen.items():
                rows = train.select(indices).map(
                    pack, batched=True, batch_size=1000, keep_in_memory=True,
                    remove_columns=train.column_names,
                    features=Features({"input_ids": Sequence(Value("int32"),
                                                             length=stage.seq_len)}),
                    fn_kwargs={"seq_len": stage.seq_len, "eos_id": eos})
                rows.save_to_disk(str(tmp / name / domain))
                counts[name][domain] = {"documents": len(indices), "rows": len(rows),
                                               "tokens": len(rows) * stage.seq_len}
        tokenize(corpus.documents["heldout"]).save_to_disk(str(tmp / "heldout"))
        write_json(tmp / "counts.json", counts)
    return folder


class StageSampler:
    """Packed rows of one stage, streamed with the stage's domain shares.

    sampler = stage_sampler("toy", stage=2)
    x, domains = sampler.batch(position, batch_size)   # x: (batch_size, seq_len) int64
    The trainer saves `position` (rows consumed so far) and resumes from it.
    """

    def __init__(self, pools: dict[str, np.ndarray], weights: dict[str, float], seed: int = 0,
                 stage: int = 1):
        active = {d: w for d, w in weights.items() if w > 0}
        empty = [d for d in active if len(pools.get(d, ())) == 0]
        if empty:
            raise ValueError(f"Stage {stage} gives {empty} a share of the tokens, but the corpus "
                             f"has no packed rows for it: enlarge those sources in the profile's "
                             f"data section, or set their weights to 0.")
        self.domains = sorted(active, key=DOMAINS.index)
        self.weights = np.array([active[d] for d in self.domains], dtype=np.float64)
        self.pools = [torch.from_numpy(np.asarray(pools[d], dtype=np.int64)) for d in self.domains]
        self.seq_len = self.pools[0].shape[1]
        self.seed, self.stage = seed, stage
        self._credit = np.zeros(len(self.domains))
        self._schedule: list[tuple[int, int]] = []   # position -> (domain, its k-th row)
        self._taken = [0] * len(self.domains)
        self._orders: dict[int, tuple[int, np.ndarray]] = {}   # domain -> (pass, order)

    def _extend(self, until: int) -> None:
        """Smooth weighted round-robin: credit += weights; the richest domain emits and pays 1."""
        while len(self._schedule) < until:
            self._credit += self.weights
            d = int(np.argmax(self._credit))
            self._credit[d] -= 1.0
            self._schedule.append((d, self._taken[d]))
            self._taken[d] += 1

    def _row(self, d: int, k: int) -> torch.Tensor:
        """Row k of domain d: pass k // n over the pool, in that pass's seeded order."""
        n = len(self.pools[d])
        epoch, j = divmod(k, n)
        if self._orders.get(d, (None,))[0] != epoch:
            rng = np.random.default_rng([self.seed, self.stage, DOMAINS.index(self.domains[d]),
                                         epoch])
            self._orders[d] = (epoch, rng.permutation(n))
        return self.pools[d][self._orders[d][1][j]]

    def batch(self, position: int, size: int) -> tuple[torch.Tensor, list[str]]:
        """Rows `position .. position + size - 1` of the stream, and each row's domain."""
        if position < 0 or size < 1:
            raise ValueError(f"position must be ≥ 0 and size ≥ 1, got {position} and {size}.")
        self._extend(position + size)
        picks = self._schedule[position:position + size]
        return (torch.stack([self._row(d, k) for d, k in picks]),
                [self.domains[d] for d, _ in picks])

    def __iter__(self):
        position = 0
        while True:
            x, domains = self.batch(position, 1)
            yield x[0], domains[0]
            position += 1

    def token_shares(self, rows: int, start: int = 0) -> dict[str, float]:
        """Share of tokens per domain in rows `start .. start + rows - 1` of the stream."""
        self._extend(start + rows)
        picked = [self.domains[d] for d, _ in self._schedule[start:start + rows]]
        return {d: picked.count(d) / rows for d in self.domains}


def stage_sampler(profile, stage: int | str, runs_root: str | Path | None = None,
                  seed: int | None = None) -> StageSampler:
    """The sampler of pretraining stage 1, 2 or 3, or of the control's mixture (`CONTROL`);
    builds corpus, tokenizer and rows if needed."""
    from datasets import load_from_disk

    profile = as_profile(profile)
    data = section(profile, stage)
    folder = ensure_packed(profile, runs_root) / (stage if stage == CONTROL else f"stage{stage}")
    pools = {d: load_from_disk(str(folder / d)).with_format("numpy")["input_ids"][:]
             for d, w in data.weights.items() if w > 0 and (folder / d).exists()}
    return StageSampler(pools, data.weights, profile.seed if seed is None else seed,
                        0 if stage == CONTROL else stage)           # the control is seeded as stage 0


def heldout_sequences(profile, domain: str, seq_len: int,
                      runs_root: str | Path | None = None) -> torch.Tensor:
    """Held-out documents of `domain` packed like training rows: (n_rows, seq_len) int64."""
    from datasets import load_from_disk

    from ..chat import ENDOFTEXT
    from ..tokenizer import ensure_tokenizer

    if domain not in DOMAINS:
        raise ValueError(f"Unknown domain {domain!r}; the held-out splits are {list(DOMAINS)}.")
    profile = as_profile(profile)
    heldout = load_from_disk(str(ensure_packed(profile, runs_root) / "heldout"))
    eos = ensure_tokenizer(profile, runs_root).convert_tokens_to_ids(ENDOFTEXT)
    ids = [row for row, d in zip(heldout["input_ids"][:], heldout["domain"][:]) if d == domain]
    rows = pack({"input_ids": ids}, seq_len, eos)["input_ids"]
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, seq_len)


def packed_counts(profile, runs_root: str | Path | None = None) -> dict:
    """Rows and tokens per stage and domain (the corpus token counts notebook 02 reports)."""
    import json
    return json.loads((ensure_packed(profile, runs_root) / "counts.json").read_text())

