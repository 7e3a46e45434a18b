import math

import pytest

from mimo_lite.eval import load_suite
from mimo_lite.eval.intervals import fmt
from mimo_lite.profile import load_profile

pytestmark = pytest.mark.notebook


def interval(x, lo=0.0, hi=1.0):
    assert {"estimate", "low", "high", "n"} <= set(x) <= {"estimate", "low", "high", "n", "verdict"} and x["n"] > 0
    assert lo <= x["low"] <= x["estimate"] <= x["high"] <= hi


def verdict(x):
    return "higher" if x["low"] > 0 else "lower" if x["high"] < 0 else "within noise"


def test_notebook_10_evaluates_the_four_models_and_writes_the_report(run_notebook, smoke_runs):
    r = run_notebook("10")
    e = load_profile("smoke").eval

    # the estimator: the formula equals the enumeration of every k-subset; the plug-in is biased low
    assert r["estimator_bruteforce_equal"] is True and r["estimator_max_gap"] < 1e-12
    n = r["estimator_n"]
    assert r["estimator_pairs"] == (n + 1) * n
    b = r["estimator_bias"]
    assert b["unbiased"] == pytest.approx(b["truth"], abs=1e-12) and b["plug_in"] < b["truth"]

    # the table: four models × domains, pass@1 ≤ pass@k ≤ 1, each interval holding its estimate
    assert r["k_max"] == max(e.k)
    heldout = load_suite("heldout", "smoke", smoke_runs)
    available = {d: sum(p["domain"] == d for p in heldout) for d in ("math", "code")}
    assert r["problems"] == {"math": min(e.math_problems, available["math"]),
                             "code": min(e.code_problems, available["code"])}
    assert list(r["table"]) == ["Base", "RL-Zero", "SFT", "RL"]
    for row in r["table"].values():
        assert set(row) == {"math", "code"}
        for d in row.values():
            one, k = d["pass@1"], d[f"pass@{r['k_max']}"]
            interval(one), interval(k)
            assert one["n"] == k["n"] and one["estimate"] <= k["estimate"] + 1e-12
    for a in r["averaging"].values():
        interval(a["one_reply"]), interval(a["averaged"])
    for row in r["by_tier"].values():
        for x in row.values():
            interval(x)

    # the gains and every verdict are the ones their intervals allow
    for g in r["rl_gains"].values():
        for x in (g["pass_at_1"], g["pass_at_k"], g["difference"]):
            interval(x, -1.0, 1.0)
            assert x["verdict"] == verdict(x)
    for key, g in r["findings"].items():
        interval(g, -1.0, 1.0)
        assert g["verdict"] == verdict(g)
        if key == "rl_vs_sft_math":
            assert g == r["rl_gains"]["rl_vs_sft_math"]["pass_at_1"]
    assert r["paper_rl_over_sft"] is True

    # RL over SFT on the tiers the main RL run trained on and on the others: the two parts are the
    # domain's problems, split by `rl.math_tiers` / `rl.code_tiers`, each with its own verdict
    rl = load_profile("smoke").rl
    for d, tiers in (("math", set(rl.math_tiers)), ("code", set(rl.code_tiers))):
        parts = {k: g for k, g in r["rl_by_training"].items() if k.split()[0] == d}
        assert sum(g["n"] for g in parts.values()) == r["problems"][d]
        for key, g in parts.items():
            assert key == f"{d} {'trained' if g['trained'] else 'not trained'}"
            assert all((t in tiers) == g["trained"] for t in g["tiers"])
            core = {k: v for k, v in g.items() if k not in ("tiers", "trained")}
            interval(core, -1.0, 1.0)
            assert g["verdict"] == verdict(g)
    # notebook 08's own before/after measurement of the same RL model, beside it
    g8 = r["rl_trained_gain_08"]
    assert g8["low"] <= g8["estimate"] <= g8["high"] and -1.0 <= g8["low"] and g8["high"] <= 1.0
    assert g8["verdict"] == verdict(g8)
    assert 0 <= r["averaged_narrower"] <= 4

    # HumanEval through the sandbox: the canonical solution passes, the wrong body fails, and the
    # verdicts agree with the evaluation's scorer
    h = r["humaneval"]
    assert h["problem"] == "HumanEval/2" and h["problems"] == 164
    assert h["verdicts"]["canonical"]["status"] == "passed" and h["verdicts"]["canonical"]["passed"] is True
    assert h["verdicts"]["wrong body"]["status"] == "wrong_answer" and h["verdicts"]["wrong body"]["passed"] is False
    for v in h["verdicts"].values():
        assert v["scorer"] == v["passed"]

    # the evaluations are on disk, and the report holds the table's numbers
    for model in ("base", "rl_zero", "sft", "rl"):
        assert (smoke_runs / "smoke" / "eval" / f"{model}-heldout_spread" / "table.jsonl").is_file()
    report = smoke_runs / "smoke" / "report" / "report.md"
    assert r["report"] == str(report)
    text = report.read_text()
    for row in r["table"].values():
        for d in row.values():
            for x in d.values():
                assert fmt(x) in text
    assert (report.parent / "pass_at_k.png").is_file() and (report.parent / "tiers.png").is_file()
    figures = smoke_runs / "smoke" / "notebooks" / "figures" / "10_evaluation"
    assert {f.stem for f in figures.glob("*.png")} == {"pass_at_k", "pass_at_1_by_tier"}
    assert math.isfinite(r["wall_s"]) and r["wall_s"] > 0
