import random

import numpy as np
import pytest
import torch
from datasets import load_from_disk

from mimo_lite.data import ensure_packed, heldout_sequences, packed_counts, stage_sampler
from mimo_lite.data.mixture import StageSampler, pack, stage_documents
from mimo_lite.profile import DOMAINS, StageSection, load_profile
from mimo_lite.tokenizer import ensure_tokenizer


@pytest.fixture(scope="module")
def packed(smoke_runs):
    return ensure_packed("smoke", smoke_runs)


def pools_of(packed, stage):
    return {d: {tuple(r) for r in load_from_disk(str(packed / f"stage{stage}" / d))["input_ids"]}
            for d in DOMAINS if (packed / f"stage{stage}" / d).exists()}


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_streams_hit_the_declared_token_shares_within_one_point(packed, smoke_runs, stage):
    sampler = stage_sampler("smoke", stage, smoke_runs)
    weights = load_profile("smoke").data.stage(stage).weights
    pools = pools_of(packed, stage)
    x, domains = sampler.batch(0, 300)
    assert x.shape == (300, load_profile("smoke").data.stage(stage).seq_len)
    tokens = dict.fromkeys(DOMAINS, 0)
    for row, domain in zip(x.tolist(), domains):
        assert tuple(row) in pools[domain]            # every row really comes from its domain
        tokens[domain] += len(row)
    for domain in DOMAINS:
        assert abs(tokens[domain] / x.numel() - weights[domain]) <= 0.01, domain
    for start in (0, 7, 123):                        # and over any window of 100 rows
        shares = sampler.token_shares(100, start)
        assert all(abs(shares.get(d, 0) - weights[d]) <= 0.01 for d in DOMAINS)


def test_streams_are_reproducible_and_resumable(smoke_runs):
    a = stage_sampler("smoke", 3, smoke_runs)
    whole, domains = a.batch(0, 60)
    b = stage_sampler("smoke", 3, smoke_runs)           # a restarted trainer
    later, later_domains = b.batch(40, 20)
    first, _ = b.batch(0, 40)
    assert torch.equal(torch.cat([first, later]), whole) and later_domains == domains[40:]
    rows = [row for row, _ in zip(iter(a), range(5))]
    assert all(torch.equal(r[0], w) for r, w in zip(rows, whole[:5]))
    other, _ = stage_sampler("smoke", 3, smoke_runs, seed=1).batch(0, 60)
    assert not torch.equal(other, whole)


def test_a_small_pool_is_revisited_in_a_fresh_order_each_pass():
    pools = {"math": np.arange(40).reshape(10, 4), "code": np.arange(40, 80).reshape(10, 4)}
    sampler = StageSampler(pools, {"math": 0.5, "code": 0.5, "general": 0.0})
    x, domains = sampler.batch(0, 40)
    math = [int(r[0]) // 4 for r, d in zip(x, domains) if d == "math"]
    assert len(math) == 20
    assert sorted(math[:10]) == sorted(math[10:]) == list(range(10))
    assert math[:10] != math[10:]


def test_an_empty_domain_with_a_weight_is_refused():
    with pytest.raises(ValueError, match="no packed rows"):
        StageSampler({"math": np.zeros((0, 4))}, {"math": 1.0}, stage=3)


def test_low_value_documents_are_down_sampled_per_stage():
    domains = ["general"] * 4000
    quality = [0.9] * 2000 + [0.1] * 2000
    stage = StageSection({"general": 1.0}, 64, low_value_keep=0.2)
    chosen = stage_documents(domains, quality, stage, random.Random(0))["general"]
    kept_low = sum(i >= 2000 for i in chosen)
    assert sum(i < 2000 for i in chosen) == 2000 and 340 < kept_low < 460
    assert sorted(chosen) != chosen                        # shuffled before packing


def test_pack_joins_documents_with_eos_and_cuts_full_rows():
    rows = pack({"input_ids": [[1, 2, 3], [4, 5], [6, 7, 8, 9]]}, seq_len=4, eos_id=0)
    assert rows["input_ids"] == [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]


def test_counts_and_heldout_rows(packed, smoke_runs):
    counts = packed_counts("smoke", smoke_runs)
    profile = load_profile("smoke")
    for n in (1, 2, 3):
        stage = profile.data.stage(n)
        assert set(counts[f"stage{n}"]) == {d for d, w in stage.weights.items() if w > 0}
        for domain, c in counts[f"stage{n}"].items():
            assert c["tokens"] == c["rows"] * stage.seq_len > 0
    tok = ensure_tokenizer("smoke", smoke_runs)
    rows = heldout_sequences("smoke", "math", 64, smoke_runs)
    assert rows.shape[1] == 64 and rows.shape[0] > 0 and rows.dtype == torch.int64
    assert "\\boxed{" in tok.decode(rows.flatten())
    with pytest.raises(ValueError, match="Unknown domain"):
        heldout_sequences("smoke", "poetry", 64, smoke_runs)


def test_stage_1_and_2_rows_hold_no_think_token(packed, smoke_runs):
    from mimo_lite.chat import THINK_TOKENS

    think = ensure_tokenizer("smoke", smoke_runs).convert_tokens_to_ids(THINK_TOKENS)
    for name in ("stage1", "stage2", "stage3", "control"):
        for domain in DOMAINS:
            if (packed / name / domain).exists():
                rows = load_from_disk(str(packed / name / domain)).with_format("numpy")["input_ids"][:]
                held = int(np.isin(rows, think).any(axis=1).sum())
                if name in ("stage1", "stage2") or domain != "synthetic_reasoning":
                    assert held == 0, (name, domain)
                else:
                    assert held > 0, (name, domain)


def test_the_control_reads_stages_2_and_3_domains_at_their_average_share(packed, smoke_runs):
    from mimo_lite.data.mixture import CONTROL, control_stage

    profile = load_profile("smoke")
    _, f2, f3 = profile.pretrain.stage_fractions
    control = control_stage(profile)
    s2, s3 = profile.data.stage(2), profile.data.stage(3)
    for d in DOMAINS:                       # the same tokens per domain after stage 1 as the curriculum
        assert control.weights[d] * (f2 + f3) == pytest.approx(f2 * s2.weights[d] + f3 * s3.weights[d])
    assert control.seq_len == s2.seq_len and control.weights["synthetic_reasoning"] > 0
    shares = stage_sampler("smoke", CONTROL, smoke_runs).token_shares(1000)
    for d, w in control.weights.items():
        assert shares[d] == pytest.approx(w, abs=0.01)
