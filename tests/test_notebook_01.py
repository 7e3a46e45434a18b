import pytest

from mimo_lite.profile import DOMAINS

pytestmark = pytest.mark.notebook


def test_notebook_01_builds_the_corpus_and_shows_each_step(run_notebook):
    r = run_notebook("01")
    assert set(r["documents"]["train"]) == set(DOMAINS) == set(r["documents"]["heldout"])
    dedup = r["dedup"]
    assert dedup["planted_exact_caught"] == dedup["planted_exact"] > 0
    assert dedup["planted_near_caught"] >= 0.8 * dedup["planted_near"] > 0
    assert dedup["documents_out"] == dedup["documents_in"] - dedup["exact_removed"] - dedup["near_removed"]
    assert r["minhash_mean_abs_error"] < 0.05
    keep = r["keep_rates"]
    for domain in ("math", "code"):                     # the report's argument, measured
        assert keep[domain]["heuristic rules"] < 0.5 and keep[domain]["learned tagger"] > 0.9
    assert keep["low_value"]["learned tagger"] < 0.1
    assert r["max_share_error"] <= 0.01
    shares = r["stage_shares_measured"]
    assert shares["stage 1"]["synthetic_reasoning"] == 0
    assert shares["stage 2"]["math"] + shares["stage 2"]["code"] == pytest.approx(0.7, abs=0.01)
    assert shares["stage 3"]["synthetic_reasoning"] == pytest.approx(0.1, abs=0.01)
    assert r["seq_len"]["3"] > r["seq_len"]["1"] == r["seq_len"]["2"]
    assert all(tokens > 0 for tokens in r["tokens_per_stage"].values())
    assert r["tokens_by_stage_domain"]["stage3"]["synthetic_reasoning"] > 0
    think = r["think_rows"]
    assert sum(think["stage1"].values()) == sum(think["stage2"].values()) == 0   # stage 1–2: no <think>
    assert think["stage3"]["synthetic_reasoning"] > 0 and set(think["stage3"]) == set(DOMAINS)
    assert sum(v for d, v in think["stage3"].items() if d != "synthetic_reasoning") == 0
    dc = r["decontamination"]
    assert dc["n"] == 16 and dc["evaluation_texts"] > 0
    assert dc["removed"] == sum(dc["removed_by_domain"].values())
