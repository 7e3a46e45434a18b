import json

import pytest
import yaml

from mimo_lite.artifacts import building, current
from mimo_lite.data import ensure_corpus
from mimo_lite.profile import DOMAINS, PROFILE_DIR, load_profile


@pytest.fixture(scope="module")
def corpus(smoke_runs):
    return ensure_corpus("smoke", smoke_runs)


def test_documents_carry_the_contract_columns_and_every_domain(corpus):
    train, heldout = corpus.documents["train"], corpus.documents["heldout"]
    assert {"text", "source", "domain", "low_value", "quality", "heuristic",
            "labelled"} <= set(train.column_names)
    assert set(train["domain"][:]) == set(DOMAINS) == set(heldout["domain"][:])
    assert not set(train["text"][:]) & set(heldout["text"][:])
    assert all(0.0 <= q <= 1.0 for q in train["quality"][:])


def test_report_figures_match_the_documents(corpus):
    report = corpus.report
    train, heldout = corpus.documents["train"], corpus.documents["heldout"]
    decontaminated = report["decontamination"]
    assert decontaminated["documents_in"] == report["dedup"]["documents_out"]
    assert decontaminated["documents_in"] - decontaminated["removed"] == len(train) + len(heldout)
    assert report["dedup"]["planted_exact_caught"] == report["dedup"]["planted_exact"] > 0
    # no exact duplicate survives
    texts = [" ".join(t.split()) for t in train["text"][:] + heldout["text"][:]]
    assert len(set(texts)) == len(texts)
    # the planted low-value label and the tagger agree on the documents it did not learn from
    confusion = report["quality"]["confusion_tagger"]
    assert confusion["low_value"]["dropped"] > confusion["low_value"]["kept"]
    assert confusion["high_value"]["kept"] > 0.9 * sum(confusion["high_value"].values())
    counted = sum(v["documents"] for v in report["quality"]["by_group"].values())
    unlabelled = sum(not x for x in train["labelled"][:] + heldout["labelled"][:])
    assert counted == report["quality"]["evaluated_on"] == unlabelled


def test_a_second_call_reuses_the_build(corpus, smoke_runs):
    marker = corpus.path / "BUILD.json"
    before = marker.stat().st_mtime_ns
    again = ensure_corpus("smoke", smoke_runs)
    assert again.fingerprint == corpus.fingerprint and marker.stat().st_mtime_ns == before


def test_a_changed_config_rebuilds(tmp_path):
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw["data"].update(code_files=3, docstring_modules=5, math_docs=60, reasoning_docs=30,
                       low_value_docs=30, tagger_labelled=60)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    first = ensure_corpus(path, tmp_path / "runs")
    raw["data"]["math_docs"] = 90
    path.write_text(yaml.safe_dump(raw))
    second = ensure_corpus(path, tmp_path / "runs")
    assert second.fingerprint != first.fingerprint
    assert second.report["generated_by_source"] != first.report["generated_by_source"]
    assert current(second.path, second.fingerprint) and not current(second.path, first.fingerprint)


def test_an_interrupted_build_leaves_the_previous_artifact(tmp_path):
    folder = tmp_path / "artifact"
    with building(folder, "v1") as tmp:
        (tmp / "data.txt").write_text("one")
    with pytest.raises(RuntimeError):
        with building(folder, "v2") as tmp:
            (tmp / "data.txt").write_text("half")
            raise RuntimeError("power cut")
    assert (folder / "data.txt").read_text() == "one" and current(folder, "v1")
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]
    assert json.loads((folder / "BUILD.json").read_text())["fingerprint"] == "v1"


@pytest.mark.parametrize("change, message", [
    ({"stage2": {"weights": {"general": 0.5, "math": 0.4}}}, "must sum to 1"),
    ({"stage1": {"weights": {"general": 0.5, "poetry": 0.5}}}, "unknown domain"),
    ({"stage3": {"weights": {"general": 1.0}, "low_value_keep": 2}}, "low_value_keep"),
    ({"math_docs": -1}, "math_docs"),
    ({"heldout_fraction": 0.9}, "heldout_fraction"),
    ({"mixture": {}}, "unknown key"),
])
def test_bad_data_sections_stop_with_one_sentence(tmp_path, change, message):
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw["data"].update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=message):
        load_profile(path)


def test_every_profile_declares_the_three_stages_like_the_report():
    for name in ("smoke", "toy", "gpu"):
        profile = load_profile(name)
        data = profile.data
        s1, s2, s3 = (data.stage(n) for n in (1, 2, 3))
        assert s1.weights["synthetic_reasoning"] == 0 and s1.low_value_keep < 1
        assert s2.weights["math"] + s2.weights["code"] == pytest.approx(0.7)
        assert s3.weights["synthetic_reasoning"] == pytest.approx(0.1)
        assert s1.seq_len == s2.seq_len < s3.seq_len <= profile.model.config().max_position_embeddings
    with pytest.raises(ValueError, match="no stage 4"):
        load_profile("smoke").data.stage(4)
