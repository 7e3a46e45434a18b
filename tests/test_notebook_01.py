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
    think = r["think_documents"]                           # every <think> response is synthetic reasoning
    assert think["synthetic_reasoning"] > 0 and all(think[d] == 0 for d in DOMAINS if d != "synthetic_reasoning")
    dc = r["decontamination"]
    assert dc["n"] == 16 and dc["evaluation_texts"] > 0
    assert dc["removed"] == sum(dc["removed_by_domain"].values())
