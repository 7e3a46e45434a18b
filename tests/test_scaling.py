"""The calculator's arithmetic against numbers worked out by hand, and its parameter count against
the model itself built on the meta device."""

import pytest
import torch

from mimo_lite.config import PRESETS, preset
from mimo_lite.model import MiMoForCausalLM
from mimo_lite.scaling import (activation_bytes, fsdp_state_bytes, gpu_days, kv_cache_bytes_per_token,
                               memory_per_gpu, parameter_count, train_flops_per_token)

MIMO = preset("mimo_7b")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_count_equals_the_model_built_on_meta(name):
    config = preset(name)
    with torch.device("meta"):
        model = MiMoForCausalLM(config)
    counts = parameter_count(config)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["decoder layer"] == sum(p.numel() for p in model.model.layers[0].parameters())
    assert counts["MTP layer"] == sum(p.numel() for p in model.model.mtp_layers[0].parameters())


def test_parameter_count_of_mimo_7b_is_the_facts_files():
    counts = parameter_count(MIMO)                     # facts file §1.2
    assert counts["decoder layer"] == 177_223_680
    assert counts["attention (per layer)"] == 41_949_184
    assert counts["MLP (per layer)"] == 135_266_304
    assert counts["embedding"] == counts["lm_head"] == 621_281_280
    assert counts["MTP layer"] == 210_790_400
    assert counts["total"] == 7_833_409_536
    assert counts["total"] - counts["MTP layers (all)"] == 7_622_619_136
    tied = parameter_count(preset("mimo_7b", tie_word_embeddings=True))
    assert tied["total"] == 7_833_409_536 - 621_281_280


def test_train_flops_per_token_by_hand():
    # 6 · (7,833,409,536 − 621,281,280) + 12 · 36 · 8192 · 4096 + 6 · 151,680 · 4096 (the MTP
    # layer's pass through the output head)
    by_hand = 6 * 7_212_128_256 + 14_495_514_624 + 3_727_687_680
    assert train_flops_per_token(MIMO, 8192) == by_hand == 61_495_971_840
    # the attention term grows with the context, the 6·N term does not
    assert train_flops_per_token(MIMO, 32768) - train_flops_per_token(MIMO, 8192) == 12 * 36 * 24576 * 4096


def test_gpu_days_by_hand():
    # 1e12 tokens × 6e9 FLOPs = 6e21 FLOPs; at 50% of 1e15 FLOP/s: 1.2e7 s = 138.9 days
    assert gpu_days(1e12, 6e9, 0.5, 1e15) == pytest.approx(1.2e7 / 86_400)
    assert gpu_days(1e12, 6e9, 0.25, 1e15) == pytest.approx(2 * gpu_days(1e12, 6e9, 0.5, 1e15))


def test_fsdp_state_by_hand():
    rows = fsdp_state_bytes(MIMO, 8)
    n = 7_833_409_536
    assert rows["master weights (fp32)"] == rows["gradients (fp32)"] == 4 * n / 8
    assert rows["Adam moments (fp32)"] == 8 * n / 8
    # root: embedding + lm_head + final norm; the largest block is the MTP layer
    assert rows["gathered bf16 (root + 2 blocks)"] == 2 * (2 * 621_281_280 + 4096 + 2 * 210_790_400)
    sharded = {k: v for k, v in rows.items() if "fp32" in k}
    assert sum(sharded.values()) == 16 * n / 8
    assert fsdp_state_bytes(MIMO, 64)["Adam moments (fp32)"] == rows["Adam moments (fp32)"] / 8


def test_activations_by_hand():
    # per token and block: 2 bytes × (6·4096 + 2·8·128 + 4·11008)
    assert activation_bytes(MIMO, 1)["per block, per token"] == 2 * (24_576 + 2_048 + 44_032) == 141_312
    full = activation_bytes(MIMO, 8192)
    assert full["blocks"] == 37 * 141_312 * 8192                   # 36 layers + 1 MTP layer
    assert full["head (logits + log-softmax)"] == 2 * 6 * 151_680 * 8192
    ckpt = activation_bytes(MIMO, 8192, checkpointing=True)
    assert ckpt["blocks"] == (37 * 2 * 4096 + 141_312) * 8192
    assert ckpt["head (logits + log-softmax)"] == full["head (logits + log-softmax)"]
    assert ckpt["total"] < full["total"]


def test_memory_per_gpu_falls_with_gpus_and_with_checkpointing():
    totals = [memory_per_gpu(MIMO, n, 8192)["total"] for n in (8, 16, 32, 64, 128, 256)]
    assert totals == sorted(totals, reverse=True)
    row = memory_per_gpu(MIMO, 8, 8192, micro_batch=2, checkpointing=True)
    assert row["activations"] == 2 * activation_bytes(MIMO, 8192, True)["total"]
    assert row["total"] == pytest.approx(sum(v for k, v in row.items() if k != "total"))
    assert row["total"] < memory_per_gpu(MIMO, 8, 8192, micro_batch=2)["total"]


def test_kv_cache_by_hand():
    assert kv_cache_bytes_per_token(MIMO) == 2 * 36 * 8 * 128 * 2 == 147_456
    assert kv_cache_bytes_per_token(MIMO) * 32768 / 2**30 == pytest.approx(4.5)   # notebook 03's figure
    assert kv_cache_bytes_per_token(preset("toy"), 4) == 2 * 4 * 2 * 32 * 4
