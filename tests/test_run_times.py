"""Each notebook's run time: noted by `mimo-lite notebooks`, recorded by `record-times`, printed by `start`."""

import json

import pytest

from mimo_lite.notebook import note_run_time, record_run_times, run_time_line


def test_noted_times_become_the_record_that_each_notebook_prints(tmp_path):
    out = tmp_path / "runs" / "toy" / "notebooks"
    out.mkdir(parents=True)
    note_run_time(out, "04_pretraining", "toy", 383.24)
    note_run_time(out, "05_inference_mtp", "toy", 110.0)
    note_run_time(out, "04_pretraining", "toy", 390.0)          # a later run replaces the earlier
    record = tmp_path / "run_times.json"
    entry = record_run_times("toy", tmp_path / "runs", "fresh clone", record=record)
    assert entry["notebooks"] == {"04_pretraining": 390.0, "05_inference_mtp": 110.0}
    assert entry["total_s"] == 500.0 and entry["how"] == "fresh clone"
    assert json.loads(record.read_text())["toy"]["notebooks"]["05_inference_mtp"] == 110.0

    line = run_time_line("04_pretraining", out / "run_times.json", record=record)
    assert line.startswith("Run time of 04_pretraining, recorded: toy 390 s (")
    assert "fresh clone" in line and "its last run here: 390 s at 'toy'" in line
    assert run_time_line("09_seamless_rollout", None, record=record).endswith("none yet")


def test_recording_without_a_run_says_what_to_run(tmp_path):
    with pytest.raises(SystemExit, match="mimo-lite notebooks --profile toy"):
        record_run_times("toy", tmp_path, record=tmp_path / "r.json")
