def test_overview_lists_profiles_and_notebooks(run_notebook):
    rec = run_notebook("00")
    assert set(rec["profiles"]) >= {"smoke", "toy", "gpu"}
    sizes = rec["profiles"]
    assert sizes["smoke"]["params"] < sizes["toy"]["params"] < sizes["gpu"]["params"]
    assert "00_overview" in rec["notebooks_present"] and "03_architecture" in rec["notebooks_present"]
    present = rec["notebooks_present"]
    assert present.index("05_inference") < present.index("05b_mtp_speculative") < present.index("06_sft")
