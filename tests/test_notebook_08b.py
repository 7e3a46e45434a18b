import json

import pytest

from mimo_lite.eval.intervals import fmt
from mimo_lite.profile import load_profile
from mimo_lite.rl.runs import rl_summary

pytestmark = pytest.mark.notebook


def interval_of(heldout):
    """The recorded held-out pass@1 (math tiers) as the notebook's interval: estimate and n."""
    n = sum(heldout["answers_by_tier"].values())
    return sum(heldout["by_tier"][t] * heldout["answers_by_tier"][t] for t in heldout["by_tier"]) / n, n


def test_notebook_08b_grpo_ablations(run_notebook, smoke_runs):
    r = run_notebook("08b")
    rl = load_profile("smoke").rl

    # 1. code reward: every scheme produced numbers and a verdict
    assert set(r["code_ablation"]) == {"vanilla", "strict", "soft"}
    for v in r["code_ablation"].values():
        assert 0 <= v["zero_advantage"] <= 1 and 0 <= v["soft"] <= 1
        low, high = v["interval"]
        assert low <= v["pass_at_1"] <= high and v["gain_interval"][0] <= v["gain"] <= v["gain_interval"][1]
    assert set(r["code_ablation_differences"]) == {"soft − vanilla", "strict − vanilla", "soft − strict"}
    assert set(r["code_ablation_raised"]) == {"vanilla", "strict", "soft"}
    assert isinstance(r["code_ablation_paper_order"], bool)

    # 2–4: every figure is an interval that holds its estimate, and every verdict is the one
    # its intervals allow
    def interval(x, lo=0.0, hi=float("inf")):
        assert set(x) == {"estimate", "low", "high", "n"} and x["n"] > 0
        if x["estimate"] is not None:               # None: no data for it (a smoke run may find no signal)
            assert lo <= x["low"] <= x["estimate"] <= x["high"] <= hi

    def verdict(a, b):
        if a["estimate"] is None or b["estimate"] is None:
            return "not measured"
        return "higher" if a["low"] > b["high"] else "lower" if a["high"] < b["low"] else "within noise"

    easy = r["easy_ablation"]
    assert set(easy) == {"easy pool (α = 0.1)", "removed (α = 0)", "kept (no filter)"}
    for v in easy.values():
        interval(v["main_rollouts_per_valid_batch"])
        interval(v["reward_std"])
        interval(v["reward_mean"], 0, 1)
        interval(v["heldout_after"], 0, 1)
        assert 0 <= v["easy_draw_share"] <= 1 and v["easy_pool_end"] >= 0
    assert easy["kept (no filter)"]["easy_pool_end"] == 0 and easy["removed (α = 0)"]["easy_draw_share"] == 0
    abl = rl.with_overrides(**rl.ablation)
    assert r["easy_window"] == [1, abl.steps]
    pool, removed, kept = (easy[k] for k in ("easy pool (α = 0.1)", "removed (α = 0)", "kept (no filter)"))
    assert r["easy_verdicts"] == dict(
        kept_vs_pool_rollouts=verdict(kept["main_rollouts_per_valid_batch"], pool["main_rollouts_per_valid_batch"]),
        removed_vs_pool_rollouts=verdict(removed["main_rollouts_per_valid_batch"], pool["main_rollouts_per_valid_batch"]),
        removed_vs_pool_reward_std=verdict(removed["reward_std"], pool["reward_std"]),
        removed_vs_pool_heldout=verdict(removed["heldout_after"], pool["heldout_after"]))
    assert r["easy_pool_filled"] == (pool["easy_pool_at_window"] > 0)

    ds = r["dynamic_sampling_ablation"]
    assert set(ds) == {"with dynamic sampling", "without"}
    for v in ds.values():
        assert v["seeds"] == rl.ablation_seeds and v["steps"] == rl.ablation_seeds * abl.steps
        interval(v["signal_groups"], 0, abl.batch_prompts)
        interval(v["zero_advantage_trained"], 0, 1)
        interval(v["rollouts_per_step"])
        interval(v["heldout_before"], 0, 1)
        interval(v["heldout_after"], 0, 1)
    on, off = ds["with dynamic sampling"], ds["without"]
    assert on["zero_advantage_trained"]["estimate"] <= off["zero_advantage_trained"]["estimate"]
    assert off["rollouts_per_step"]["estimate"] == abl.batch_prompts * abl.group_size
    assert r["dynamic_sampling_verdicts"] == dict(signal_groups=verdict(on["signal_groups"], off["signal_groups"]),
                                                  heldout_after=verdict(on["heldout_after"], off["heldout_after"]))

    starts = r["start_ablation"]
    assert set(starts) == {"full SFT → RL", "light SFT → RL", "base → RL-Zero"}
    for v in starts.values():
        for key in ("before", "after", "before_common", "after_common"):
            interval(v[key], 0, 1)
    full, light, zero = (starts[k] for k in ("full SFT → RL", "light SFT → RL", "base → RL-Zero"))
    assert full["steps"] == light["steps"] == rl.steps and full["tiers"] == light["tiers"]   # same RL settings
    estimate, n = interval_of(rl_summary(smoke_runs / "smoke" / "rl")["heldout_after"])   # full SFT → RL: the main RL run
    assert full["after"]["estimate"] == pytest.approx(estimate) and full["after"]["n"] == n
    assert r["start_verdicts"] == dict(full_vs_light_before=verdict(full["before"], light["before"]),
                                       full_vs_light_after=verdict(full["after"], light["after"]),
                                       light_vs_zero_before=verdict(light["before_common"], zero["before_common"]),
                                       light_vs_zero_after=verdict(light["after_common"], zero["after_common"]))
    assert r["full_sft_ahead"] == (r["start_verdicts"]["full_vs_light_after"] == "higher")
    assert r["light_sft_crosses_below_zero"] == (r["start_verdicts"]["light_vs_zero_before"] == "higher"
                                                 and r["start_verdicts"]["light_vs_zero_after"] == "lower")


    # the closing note counts the paper's effects that show beyond noise
    assert r["paper_effects_shown"] == sum([r["code_ablation_paper_order"],
                                            r["easy_verdicts"]["kept_vs_pool_rollouts"] == "higher",
                                            r["dynamic_sampling_verdicts"]["signal_groups"] == "higher",
                                            r["full_sft_ahead"]])
    assert r["wall_s"] > 0
    # ... and prints every ablation's figures with their intervals beside the verdicts
    executed = json.loads((smoke_runs / "smoke" / "notebooks" / "08b_grpo_ablations.ipynb").read_text())
    [closing] = [c for c in executed["cells"] if "paper_effects_shown=shown" in "".join(c["source"])]
    printed = "".join("".join(o.get("text", "")) for o in closing["outputs"])
    pairs = [(v["pass_at_1"], v["interval"], False) for v in r["code_ablation"].values()]
    pairs += [(v["gain"], v["gain_interval"], True) for v in r["code_ablation"].values()]
    pairs += [(d["mean"], d["interval"], True) for d in r["code_ablation_differences"].values()]
    expected = [fmt(dict(estimate=e, low=lo, high=hi), signed=s) for e, (lo, hi), s in pairs]
    expected += [fmt(v["main_rollouts_per_valid_batch"], 0) for v in easy.values()]
    expected += [fmt(v[key]) for v in (pool, removed) for key in ("reward_std", "heldout_after")]
    expected += [fmt(v["signal_groups"], 2) for v in ds.values()] + [fmt(v["heldout_after"]) for v in ds.values()]
    expected += [fmt(full["after"]), fmt(light["after"])]
    expected += [fmt(v[key]) for v in (light, zero) for key in ("before_common", "after_common")]
    missing = [x for x in expected if x not in printed]
    assert not missing, missing
    figures = smoke_runs / "smoke" / "notebooks" / "figures" / "08b_grpo_ablations"
    assert {f.stem for f in figures.glob("*.png")} == {"code_reward_schemes", "easy_pool_ablation",
                                                        "dynamic_sampling_ablation", "sft_starts"}
