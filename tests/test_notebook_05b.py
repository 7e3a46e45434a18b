import pytest


@pytest.mark.notebook
def test_notebook_05b_mtp_speculative(run_notebook):
    r = run_notebook("05b")
    # speculative decoding: greedy output unchanged; acceptance and tokens per pass consistent
    assert r["spec1_identical"] is True and r["spec3_identical"] is True
    assert 0 <= r["spec1_acceptance"] <= 1
    assert r["spec1_teacher_forced"] == pytest.approx(r["acceptance_copies"][0])   # same layer, same text
    assert r["spec1_mean_accepted_length"] == pytest.approx(1 + r["spec1_acceptance"])
    assert r["spec3_mean_accepted_length"] == pytest.approx(1 + sum(r["spec3_acceptance"]))
    assert len(r["acceptance_copies"]) == len(r["acceptance_finetuned"]) == 3
    # the first MTP layer is frozen during the extension: its acceptance cannot move
    assert r["acceptance_finetuned"][0] == pytest.approx(r["acceptance_copies"][0])
    assert r["spec1_speedup"] > 0 and r["spec3_speedup"] > 0
    assert 0 <= r["repetition_base"] <= 1
    # where the time of a speculative step goes: the parts add up to the measured step
    for K, b in r["spec_costs"].items():
        assert min(b["main_ms"], b["draft_ms"], b["verify_ms"]) > 0, K
        assert b["draft_ms"] + b["verify_ms"] + b["loop_ms"] >= b["spec_step_ms"] * (1 - 1e-9), K
        assert b["speedup_measured"] == pytest.approx(b["plain_step_ms"] * b["tokens_per_pass"] / b["spec_step_ms"])
    proj = r["spec_projection"]
    assert proj["mimo_7b_weights_read_ratio"] < proj["this_model_weights_read_ratio"]
    assert proj["mimo_7b_speedup_bound"] == pytest.approx(1.9 / (1 + proj["mimo_7b_weights_read_ratio"]))
    # the closing note's verdicts are the ones its figures allow
    cond = r["spec3_conditional_acceptance"]
    assert r["deeper_drafts_less_often"] == (cond[-1] < cond[0])
    for k in ("spec1_speedup", "spec3_speedup"):
        low, high = r[f"{k}_interval"]
        assert low <= r[k] <= high, k
    low, high = r["spec1_speedup_interval"]
    assert r["drafting_verdict"] == ("pays" if low > 1 else "costs" if high < 1 else "within noise")
