import math

import pytest

from mimo_lite.profile import load_profile

pytestmark = pytest.mark.notebook


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_notebook_08_grpo_runs_and_ablations(run_notebook, smoke_runs):
    r = run_notebook("08")
    rl = load_profile("smoke").rl

    # the objective: the hand-written Eq. 1 equals the library's, on-policy ratios are 1
    assert r["objective_gap"] < 1e-5
    assert r["on_policy_max_abs_log_ratio"] < 1e-3
    assert all(abs(s) < 1e-4 for s in r["group_advantage_sums"])
    assert 0 <= r["demo_clip_low"] <= 1 and 0 <= r["demo_clip_high"] <= 1

    # both main runs ran their steps and measured held-out pass@1 before and after
    for run in ("rl", "rl_zero"):
        assert r[f"{run}_steps"] == rl.steps
        for when in ("before", "after"):
            heldout = r[f"{run}_heldout_{when}"]
            assert 0 <= heldout["pass_at_1"] <= 1 and heldout["by_tier"]
        assert finite(r[f"{run}_reward_first"]) and finite(r[f"{run}_reward_last"])
    assert r["unscored_total"] >= 0

    # ablations: every variant produced numbers and a verdict
    assert set(r["code_ablation"]) == {"vanilla", "strict", "soft"}
    for v in r["code_ablation"].values():
        assert 0 <= v["zero_advantage"] <= 1 and 0 <= v["soft"] <= 1
        low, high = v["interval"]
        assert low <= v["pass_at_1"] <= high and v["gain_interval"][0] <= v["gain"] <= v["gain_interval"][1]
    assert set(r["code_ablation_differences"]) == {"soft − vanilla", "strict − vanilla", "soft − strict"}
    assert set(r["code_ablation_raised"]) == {"vanilla", "strict", "soft"}
    assert len(r["sampling_ablation"]) == 3
    for v in r["sampling_ablation"].values():
        assert finite(v["reward_late"]) and v["easy_pool"] >= 0
    assert set(r["start_ablation"]) == {"full SFT → RL", "light SFT → RL", "base → RL-Zero"}
    for key in ("code_ablation_paper_order", "easy_resampling_steadier", "dynamic_sampling_better",
                "full_sft_ahead", "light_sft_crosses_below_zero"):
        assert isinstance(r[key], bool)
    assert r["wall_s"] >= r["main_runs_wall_s"] > 0

    for name in ("rl", "rl_zero"):
        folder = smoke_runs / "smoke" / name
        assert (folder / "model.safetensors").exists() and (folder / "metrics.jsonl").exists()
    figures = smoke_runs / "smoke" / "notebooks" / "figures" / "08_grpo"
    assert {f.stem for f in figures.glob("*.png")} == {"objective", "rl_curves", "code_reward_schemes",
                                                        "sampling_ablations", "sft_starts"}
