import math

import pytest

from mimo_lite.eval.intervals import wilson
from mimo_lite.profile import load_profile
from mimo_lite.rl.runs import ablation_runs, rl_run_built

pytestmark = pytest.mark.notebook


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_notebook_08_grpo_objective_and_main_runs(run_notebook, smoke_runs):
    r = run_notebook("08")
    rl = load_profile("smoke").rl

    # the objective: the hand-written Eq. 1 equals the library's, on-policy ratios are 1
    assert r["objective_gap"] < 1e-5
    assert r["on_policy_max_abs_log_ratio"] < 1e-3
    assert all(abs(s) < 1e-4 for s in r["group_advantage_sums"])
    assert 0 <= r["demo_clip_low"] <= 1 and 0 <= r["demo_clip_high"] <= 1
    # the figure marks as clipped exactly the tokens the loss clips
    assert abs(r["demo_clipped_share"] - (r["demo_clip_low"] + r["demo_clip_high"])) < 1e-6
    # the trainer's loop written out: two steps by hand are the RL run's first two logged steps
    assert [h["step"] for h in r["hand_rl_steps"]] == [1, 2]
    assert all(finite(h["loss"]) and h["rollouts"] > 0 for h in r["hand_rl_steps"])
    assert r["hand_rl_compared"] == min(2, rl.steps) and r["hand_rl_matches_trainer"] is True

    # both main runs ran their steps and measured held-out pass@1 before and after
    for run in ("rl", "rl_zero"):
        assert r[f"{run}_steps"] == rl.steps
        for when in ("before", "after"):
            heldout = r[f"{run}_heldout_{when}"]
            assert 0 <= heldout["pass_at_1"] <= 1 and heldout["by_tier"]
        assert finite(r[f"{run}_reward_first"]) and finite(r[f"{run}_reward_last"])
    assert r["unscored_total"] >= 0
    # the verdicts: after − before with Newcombe's interval from the two Wilson intervals; a change
    # counts only when that interval excludes 0
    for name, run in (("RL (from SFT)", "rl"), ("RL-Zero (from base)", "rl_zero")):
        before, after = r[f"{run}_heldout_before"], r[f"{run}_heldout_after"]
        (pb, (lb, hb)), (pa, (la, ha)) = ((h["pass_at_1"], wilson(h["pass_at_1"] * h["answers"], h["answers"]))
                                          for h in (before, after))
        gain = r["heldout_gain"][name]
        assert gain["estimate"] == pytest.approx(pa - pb)
        assert gain["low"] == pytest.approx(pa - pb - math.hypot(pa - la, hb - pb))
        assert gain["high"] == pytest.approx(pa - pb + math.hypot(ha - pa, pb - lb))
        assert gain["low"] < gain["high"]
        expected = "higher" if gain["low"] > 0 else "lower" if gain["high"] < 0 else "within noise"
        assert r["heldout_verdict"][name] == expected
        assert r["heldout_raised"][name] == (expected == "higher")
    # the wall time: the main runs, then the wait for 08b's runs
    assert r["wall_s"] >= r["main_runs_wall_s"] + r["ablation_wait_s"] and r["main_runs_wall_s"] > 0

    for name in ("rl", "rl_zero"):
        folder = smoke_runs / "smoke" / name
        assert (folder / "model.safetensors").exists() and (folder / "metrics.jsonl").exists()
    # notebook 08 queued the runs of 08b's ablations beside its own and waited for them: they are
    # built, so 08b only looks them up
    runs = ablation_runs(load_profile("smoke"))
    assert r["ablation_runs"] == {name: len(calls) for name, calls in runs.items()}
    for calls in runs.values():
        for kw in calls.values():
            folder = smoke_runs / "smoke" / kw["name"]
            assert (folder / "model.safetensors").exists() and (folder / "summary.json").exists(), folder
            assert rl_run_built("smoke", smoke_runs, **kw), folder
    figures = smoke_runs / "smoke" / "notebooks" / "figures" / "08_grpo"
    assert {f.stem for f in figures.glob("*.png")} == {"objective", "rl_curves"}
