import json

import pytest


def test_pretraining_notebook_runs_three_stages_and_learns(run_notebook):
    rec = run_notebook("04")
    assert rec["stages_seen"] == [1, 2, 3]
    assert rec["final_loss"] < rec["first_loss"] - 0.5                 # the loss fell
    assert set(rec["heldout_loss"]) == {"stage1", "stage2", "stage3"}
    assert set(rec["control_heldout_loss"]) >= {"stage3"}
    for domain, loss in rec["heldout_loss"]["stage3"].items():
        assert 0 < loss < 7, domain                                    # below ln(512) + slack: learnt something
    assert 0 <= rec["final_mtp_top1"] <= 1
    assert 0 <= rec["base_pass_at_1"] <= rec["base_pass_at_k"] <= 1
    assert rec["easy_problems"] > 0 and rec["samples_per_problem"] > 1
    shares = rec["domain_shares"]                                      # the control: same domains, same tokens
    for domain, s in shares.items():
        assert s["control"] > 0 or s["stage 2"] == s["stage 3"] == 0, domain
    assert set(rec["curriculum_verdicts"]) == set(rec["curriculum_gain"])
    for domain, gain in rec["curriculum_gain"].items():
        assert ("HIGHER" in rec["curriculum_verdicts"][domain]) == (gain <= 0)
    assert set(rec["mtp_below_main"]) == {"stage1", "stage2", "stage3"}
    assert all(0 <= v <= 1 for v in rec["mtp_below_main"].values())
    # in units of the stage-1/2 context (64 at smoke): 1/4, 3/4, 25/16 of it (25/8 does not fit in 128)
    assert rec["long_context_distances"] == [16, 48, 100]
    assert len(rec["long_context"]) == 4
    for name, per_d in rec["long_context"].items():
        assert set(per_d) == {"16", "48", "100"}
        for d in per_d.values():
            assert 0 <= d["repeat_top1"] <= 1 and d["repeat_loss"] > 0, name
    # loss by position: buckets up to stage 3's context, and the verdict follows the intervals
    assert rec["long_context_position_edges"] == [0, 32, 64, 96, 127]  # smoke: contexts 64 and 128
    rise = rec["long_context_rise"]
    assert set(rise) == set(rec["long_context"]) == set(rec["long_context_loss_by_position"])
    assert all(len(v) == 4 and min(v) > 0 for v in rec["long_context_loss_by_position"].values())
    a, _, c, ctrl = rise.values()
    flatter = min(a["mean"] - a["ci95"], ctrl["mean"] - ctrl["ci95"]) - (c["mean"] + c["ci95"])
    assert rec["long_context_position_verdict"] == (flatter > 0)
    # the copy probe's verdict follows its figures
    copy = list(rec["long_context_summary"].values())
    gained = copy[2]["far"] - max(copy[0]["far"], copy[3]["far"])
    assert rec["long_context_copy_gain"] == pytest.approx(gained)
    assert rec["long_context_copy_verdict"] == ("extended" if gained > 0.05 else "not extended"
                                                if max(v["near"] for v in copy) > 0.05 else "no copying")
    # reading the question in the corpus's own words: the digits after its own question against another's
    reading, threshold = rec["question_reading"], rec["question_reading_threshold"]
    assert set(reading) == set(rec["long_context"])
    for name, per_d in reading.items():
        at0 = per_d["0"]
        assert at0["own_loss"] > 0 and at0["other_loss"] > 0 and at0["ci95"] >= 0, name
        assert at0["gain"] == pytest.approx(at0["other_loss"] - at0["own_loss"], abs=1e-6)
    reads = [v["0"]["gain"] - v["0"]["ci95"] > threshold for v in reading.values()]
    assert (rec["question_reading_verdict"] == "no reading") == (not any(reads))
    assert all(set(per_d) == {"0"} for per_d in reading.values()) == (not any(reads))   # farther only if read


def test_the_closing_summary_follows_the_recorded_figures(run_notebook, smoke_runs):
    rec = run_notebook("04")                     # reuses the artifacts of the test above
    assert rec["mtp_ended_below_main"] == (rec["final_mtp_loss"] < rec["final_loss"])
    assert rec["curriculum_worse_domains"] == [d for d, g in rec["curriculum_gain"].items() if g <= 0]
    executed = json.loads((smoke_runs / "smoke" / "notebooks" / "04_pretraining.ipynb").read_text())
    [closing] = [c for c in executed["cells"] if "curriculum_worse_domains=worse" in "".join(c["source"])]
    printed = "".join("".join(o.get("text", "")) for o in closing["outputs"])
    assert f"ended {'below' if rec['mtp_ended_below_main'] else 'above'} the main loss" in printed
    for domain in rec["curriculum_worse_domains"]:       # each domain that got worse, with its reason
        assert rec["curriculum_verdicts"][domain] in printed
    assert ("stage 3 flattens it" in printed) == rec["long_context_position_verdict"]
    assert ("no model reads it" in printed) == (rec["question_reading_verdict"] == "no reading")


def test_executed_pretraining_notebook_keeps_its_progress_bars_at_their_end(run_notebook, smoke_runs):
    run_notebook("04")                     # reuses the artifacts of the test above
    executed = (smoke_runs / "smoke" / "notebooks" / "04_pretraining.ipynb").read_text()
    assert "application/vnd.jupyter.widget-view+json" not in executed   # a widget's copy is saved at 0%
    record = (smoke_runs / "smoke" / "notebooks" / "run_times.json").read_text()
    assert '"04_pretraining"' in record


def test_the_by_hand_steps_are_the_trainers_first_steps(run_notebook):
    rec = run_notebook("04")
    assert rec["hand_matches_trainer"] is True
    steps = rec["hand_steps"]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 1
    assert all(abs(s["loss"] - (s["main_loss"] + s["mtp_loss_weight"] * s["mtp_loss"])) < 1e-4 for s in steps)
