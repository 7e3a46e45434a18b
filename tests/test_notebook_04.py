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
