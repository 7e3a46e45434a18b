import pytest

from mimo_lite.config import preset
from mimo_lite.scaling import GiB, kv_cache_bytes_per_token, memory_per_gpu

pytestmark = pytest.mark.notebook


def test_notebook_11_prices_mimo_7b_and_builds_nothing(run_notebook, smoke_runs):
    r = run_notebook("11")          # the fixture fails if the notebook built any artifact folder

    # the calculator's count equals the models built on the meta device
    assert r["params_7b"] == r["params_7b_meta"] == 7_833_409_536
    assert r["params_profile"] == r["params_profile_meta"]

    # FLOPs: 32K costs more per token than 8K, and attention's share grows with the context
    f = r["flops_per_token"]
    # 6·N + 12·L·T·D + 6·V·D (the MTP layer's pass through the output head)
    assert f["7B @ 8K"] == 6 * (7_833_409_536 - 621_281_280) + 12 * 36 * 8192 * 4096 + 6 * 151_680 * 4096
    assert f["7B @ 32K"] > f["7B @ 8K"] > f["this profile"]
    assert r["attention_share"]["32768"] > r["attention_share"]["8192"]

    # GPU-days: the stages add up to the schedule; a higher MFU takes fewer days
    days = r["gpu_days_h200"]
    assert r["schedule_tokens"] == pytest.approx(23.784e12)
    for mfu in ("0.3", "0.4", "0.5"):
        assert days["schedule, 23.8T"][mfu] == pytest.approx(
            sum(days[s][mfu] for s in ("stage 1 (8K)", "stage 2 (8K)", "stage 3 (32K)")))
    assert days["schedule, 23.8T"]["0.3"] > days["schedule, 23.8T"]["0.4"] > days["schedule, 23.8T"]["0.5"]
    assert r["days_on_256_gpus"]["0.4"] == pytest.approx(days["schedule, 23.8T"]["0.4"] / 256)

    # memory per GPU falls with the GPUs, checkpointing lowers it, and it is the calculator's
    m = r["memory_per_gpu_gib"]
    assert r["memory_falls_with_gpus"] is True and r["checkpointing_lowers_memory"] is True
    for by_mode in m.values():
        for row in by_mode.values():
            values = [row[str(n)] for n in r["gpus"]]
            assert values == sorted(values, reverse=True)
        assert all(by_mode["checkpointed"][n] < by_mode["full"][n] for n in by_mode["full"])
    mimo = preset("mimo_7b")
    assert r["memory_7b_n8_8k_gib"]["full"] == pytest.approx(memory_per_gpu(mimo, 8, 8192)["total"] / GiB)
    assert r["memory_7b_n8_8k_gib"]["checkpointed"] == pytest.approx(
        memory_per_gpu(mimo, 8, 8192, checkpointing=True)["total"] / GiB)
    for acts in r["activations_7b_gib"].values():
        assert acts["checkpointed"] < acts["full"]

    # the KV cache of a 32K rollout: 2 · 36 · 8 · 128 · 2 bytes a token, 4.5 GiB
    assert r["kv_cache_7b_bytes_per_token"] == 147_456 and r["kv_cache_7b_32k_gib"] == pytest.approx(4.5)
    assert r["kv_cache_profile_bytes_per_token"] == kv_cache_bytes_per_token(preset("smoke"))
    assert r["rollout_sequences_per_h200"] > 0

    figures = smoke_runs / "smoke" / "notebooks" / "figures" / "11_scaling_up"
    assert (figures / "memory_per_gpu.png").is_file()

    # the calculator against the slice measured on an H200 (benchmarks/results/slice_7b_h200.json)
    import json
    from pathlib import Path

    from mimo_lite.scaling import PEAK_BF16, train_flops_per_token
    measured = json.loads((Path(__file__).parents[1] / "benchmarks" / "results" / "slice_7b_h200.json").read_text())
    slice_cfg = preset("mimo_7b", num_hidden_layers=measured["layers"])
    assert len(r["slice_check"]) == len(measured["rows"]) > 0
    for row, check in zip(measured["rows"], r["slice_check"]):
        predicted = memory_per_gpu(slice_cfg, 1, measured["seq"], measured["micro_batch"], row["checkpointing"])
        assert check["calculator_gib"] == pytest.approx(predicted["total"] / GiB)
        assert check["ratio"] == pytest.approx(row["peak_bytes"] / predicted["total"])
        assert check["within_10pct"] == (abs(check["ratio"] - 1) <= 0.10)
        assert check["mfu"] == pytest.approx(
            row["tokens_per_s"] * train_flops_per_token(slice_cfg, measured["seq"]) / PEAK_BF16["H200"])


@pytest.mark.parametrize("profile", ["toy", "gpu"])
def test_notebook_11_runs_at_every_profile(profile, tmp_path):
    """It prices the profile's own model and builds nothing, so it runs anywhere in seconds."""
    import json

    from mimo_lite.cli import run_notebooks
    [executed] = run_notebooks(profile, only=["11"], runs_root=str(tmp_path))
    r = json.loads(executed.with_suffix(".json").read_text())
    assert r["params_profile"] == r["params_profile_meta"] > 0
    assert sorted(p.name for p in (tmp_path / profile).iterdir()) == ["notebooks"]
