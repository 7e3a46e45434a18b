"""`mimo-lite report`: the report card written from a synthetic set of runs."""

import json
import random

import pytest

from mimo_lite.artifacts import write_json
from mimo_lite.cli import main
from mimo_lite.eval import pass_at_k
from mimo_lite.eval.intervals import fmt
from mimo_lite.eval.stage import eval_dir
from mimo_lite.report import MODELS, PAPER_TABLE5, SUITE, eval_results, metric, paired_gain, write_report

SAMPLES = 4


def fake_evaluation(runs, model, rng):
    """A held-out table as `evaluate` writes it: 6 math problems in 2 tiers, 4 code in 2 tiers."""
    folder = eval_dir("smoke", model, SUITE, runs)
    folder.mkdir(parents=True)
    rows = []
    for i, (domain, tier) in enumerate([("math", 1 + i % 2) for i in range(6)] + [("code", 1 + i % 2) for i in range(4)]):
        c = rng.randint(0, SAMPLES)
        rows.append(dict(id=f"{domain}-{i}", domain=domain, tier=tier, level=None, source="kit", n=SAMPLES,
                         correct=c, **{f"avg@{SAMPLES}": c / SAMPLES},
                         **{f"pass@{k}": pass_at_k(SAMPLES, c, k) for k in (1, 2, 4)}))
    (folder / "table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_json(folder / "settings.json", dict(samples=SAMPLES, k=[1, 2, 4], temperature=0.6, top_p=0.95,
                                              max_new_tokens=32))
    return rows


@pytest.fixture()
def runs(tmp_path):
    """Three of the four models evaluated (SFT is not); notebooks 05, 05b and 09 recorded, 06 and 07 not."""
    rng = random.Random(0)
    for model in ("base", "rl_zero", "rl"):
        fake_evaluation(tmp_path, model, rng)
    notebooks = tmp_path / "smoke" / "notebooks"
    notebooks.mkdir(parents=True)
    write_json(notebooks / "05_inference.json", dict(
        cache_speedup=3.5, tok_s_cache=1234.0, batching_steps={"static": 30, "continuous": 20}))
    write_json(notebooks / "05b_mtp_speculative.json", dict(
        spec1_acceptance=0.8125, spec3_conditional_acceptance=[0.8125, 0.6875, 0.5625], spec1_speedup=1.25,
        spec3_speedup=1.375))
    write_json(notebooks / "09_seamless_rollout.json", dict(
        table2={"naive": dict(overall_speedup=1.0, rollout_speedup=1.0, idle_ratio=0.5, sample_waste=0.25),
                "early_termination": dict(overall_speedup=1.8125, rollout_speedup=2.0, idle_ratio=0.125,
                                          sample_waste=0.0625)},
        table3={"seamless": dict(speedup=1.4375)}))
    return tmp_path


def test_report_lays_out_the_models_and_says_what_did_not_run(runs):
    path = write_report("smoke", runs)
    text = path.read_text()
    assert path == runs / "smoke" / "report" / "report.md"
    assert (path.parent / "pass_at_k.png").stat().st_size > 0 and (path.parent / "tiers.png").stat().st_size > 0

    # the kit's table: each evaluated model's pass@1 and pass@4 per domain, with intervals, as summarised
    results = eval_results("smoke", runs)
    assert results["sft"] is None and all(results[m] for m in ("base", "rl_zero", "rl"))
    for model in ("base", "rl_zero", "rl"):
        for domain in ("math", "code"):
            for m in ("pass@1", "pass@4"):
                x = metric(results[model], m, domain=domain)
                assert x["low"] <= x["estimate"] <= x["high"]
                assert fmt(x) in text
            for tier in (1, 2):
                assert fmt(metric(results[model], "pass@1", domain=domain, tier=tier)) in text
    math_row = next(line for line in text.splitlines() if line.startswith("| math, pass@1 |"))
    assert math_row.split(" | ")[3] == "not run"                 # the SFT column, in Table 5's order
    assert list(MODELS.values()) == ["Base", "RL-Zero", "SFT", "RL"]
    assert "Not run: SFT" in text

    # the paper's numbers beside them
    for bench, row in PAPER_TABLE5.items():
        assert f"| {bench} | " + " | ".join(f"{row[m]:.1f}" for m in MODELS) + " |" in text

    # the notebooks' records: present ones quoted, missing ones "not run" with their command
    assert "layer 1 81%, layer 2 69%, layer 3 56%" in text and "3.50×" in text and "1.50× fewer" in text
    assert "1.25× with 1 MTP layer, 1.38× with 3" in text
    assert "| early_termination | 1.81× | 2.00× | 12.5% | 6.2% | 2.29× |" in text and "1.44× here" in text
    assert "notebook 06: `mimo-lite notebooks --profile smoke --only 06`" in text
    assert "notebook 07: `mimo-lite notebooks --profile smoke --only 07`" in text


def test_report_before_any_evaluation_says_so(tmp_path):
    (tmp_path / "smoke" / "notebooks").mkdir(parents=True)
    text = write_report("smoke", tmp_path).read_text()
    assert "Held-out evaluation: not run (notebook 10" in text
    for nb in ("05", "05b", "06", "07", "09", "10"):
        assert f"not run (notebook {nb}" in text and f"--only {nb}`" in text
    assert "%" not in text.split("## 2.")[1].split("The kit:")[1]   # no acceptance figure without its run
    assert not (tmp_path / "smoke" / "report" / "pass_at_k.png").exists()


def test_cli_writes_the_report(runs, capsys):
    main(["report", "--profile", "smoke", "--runs", str(runs)])
    path = runs / "smoke" / "report" / "report.md"
    assert capsys.readouterr().out.strip() == str(path)
    assert "# mimo-lite report: profile `smoke`" in path.read_text()


def test_cli_report_without_runs_stops_with_one_sentence(tmp_path):
    with pytest.raises(SystemExit, match="nothing has run at profile 'smoke' yet"):
        main(["report", "--profile", "smoke", "--runs", str(tmp_path)])


def test_paired_gain_keeps_the_tiers_asked_for(runs):
    results = eval_results("smoke", runs)
    rows = {m: {r["id"]: r for r in results[m]["table"]} for m in ("rl", "base")}
    for tiers in ([1], [2], [1, 2]):
        g = paired_gain(results, "rl", "base", "pass@1", "math", tiers)
        diffs = [rows["rl"][i]["pass@1"] - rows["base"][i]["pass@1"]
                 for i in rows["rl"] if rows["rl"][i]["domain"] == "math" and rows["rl"][i]["tier"] in tiers]
        assert g["n"] == len(diffs) == 3 * len(tiers)
        assert g["estimate"] == pytest.approx(sum(diffs) / len(diffs))
    assert paired_gain(results, "rl", "base", "pass@1", "math", [1, 2]) == paired_gain(
        results, "rl", "base", "pass@1", "math")
    empty = paired_gain(results, "rl", "base", "pass@1", "math", [3])
    assert empty["n"] == 0 and empty["verdict"] == "not measured"
