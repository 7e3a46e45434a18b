import math

import pytest

from mimo_lite.profile import load_profile
from mimo_lite.rl.seamless import ROLLOUT_MODES

pytestmark = pytest.mark.notebook


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_notebook_09_seamless_rollout_measures_simulates_and_trains(run_notebook, smoke_runs):
    r = run_notebook("09")
    s = load_profile("smoke").seamless

    # Table 2: every mode measured on both clocks, normalised to naive
    assert set(r["table2"]) == set(ROLLOUT_MODES)
    assert r["table2"]["naive"]["overall_speedup"] == 1.0 and r["table2"]["naive"]["wall_rollout_speedup"] == 1.0
    for row in r["table2"].values():
        assert finite(row["overall_speedup"]) and finite(row["rollout_speedup"]) and row["rollout_s"] > 0
        assert 0 <= row["idle_ratio"] <= 1 and 0 <= row["wall_idle_ratio"] <= 1 and 0 <= row["sample_waste"] <= 1
        assert row["wall_rollout_s"] > 0
    assert r["table2"]["no_dynamic_sampling"]["sample_waste"] == 0
    assert r["workload"]["problems"] == s.workload_size and 0 < r["workload"]["code_share"] < 1

    # Figure 6 is drawn from the run's step 0, Table 3 scores the same answers either way
    assert r["figure6"]["naive"]["batch_ready"] > 0
    assert r["validation_same_scores"] is True
    assert r["table3"]["naive"]["speedup"] == 1.0 and r["table3"]["seamless"]["speedup"] >= 1.0

    # the simulator: calibrated table, the paper's settings, the sweep, the off-policy contrast
    assert set(r["calibrated_table"]) == set(ROLLOUT_MODES)
    assert isinstance(r["simulator_orders_like_measurement"], bool)
    paper = r["paper_settings_table"]
    assert set(paper) == set(ROLLOUT_MODES) | {"take_finished", "one_step_stale"}
    assert paper["early_termination"]["overall_speedup"] > 1.5           # the simulator's paper-scale gain
    assert paper["one_step_stale"]["step_s"] <= paper["early_termination"]["step_s"]
    assert r["stale_step_saving"] == pytest.approx(1 - paper["one_step_stale"]["step_s"] / paper["early_termination"]["step_s"])
    assert r["seamless_on_policy"] is True
    assert [int(k) for k in r["sweep"]] == s.sweep_workers and all(finite(v) for v in r["sweep"].values())

    # GRPO under the seamless scheduler next to naive, with the verdict its intervals allow
    for mode in ("naive", "early_termination"):
        g = r["grpo"][mode]
        assert g["steps"] == s.grpo_steps
        for when in ("before", "after"):
            assert 0 <= g[when]["low"] <= g[when]["estimate"] <= g[when]["high"] <= 1
    a, b = r["grpo"]["early_termination"]["after"], r["grpo"]["naive"]["after"]
    expected = "higher" if a["low"] > b["high"] else "lower" if a["high"] < b["low"] else "within noise"
    assert r["grpo_verdict"] == expected and r["grpo_same_within_noise"] == (expected == "within noise")
    assert r["grpo"]["naive"]["before"] == r["grpo"]["early_termination"]["before"]   # the same start, measured alike

    assert set(r["findings"]) == {"continuous_vs_naive", "async_reward_vs_continuous", "early_termination_vs_async_reward"}
    assert r["wall_s"] > 0
    for mode in ("naive", "early_termination"):
        assert (smoke_runs / "smoke" / "seamless" / f"grpo_{mode}" / "model.safetensors").exists()
    figures = smoke_runs / "smoke" / "notebooks" / "figures" / "09_seamless_rollout"
    assert {f.stem for f in figures.glob("*.png")} == {"figure6_gantt", "worker_sweep", "grpo_seamless_vs_naive"}
