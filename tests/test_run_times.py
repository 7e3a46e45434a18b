"""Each notebook's run time: noted by `mimo-lite notebooks`, recorded by `record-times`, printed by `start`."""

import json

import pytest

from mimo_lite.notebook import note_run_time, record_run_times, run_time_line


def test_noted_times_become_the_record_that_each_notebook_prints(tmp_path):
    out = tmp_path / "runs" / "toy" / "notebooks"
    out.mkdir(parents=True)
    note_run_time(out, "04_pretraining", "toy", 383.24)
    note_run_time(out, "05_inference", "toy", 110.0)
    note_run_time(out, "04_pretraining", "toy", 390.0)          # a later run replaces the earlier
    record = tmp_path / "run_times.json"
    entry = record_run_times("toy", tmp_path / "runs", "fresh clone", record=record)
    assert entry["notebooks"] == {"04_pretraining": 390.0, "05_inference": 110.0}
    assert entry["total_s"] == 500.0 and entry["how"] == "fresh clone"
    assert json.loads(record.read_text())["toy"]["notebooks"]["05_inference"] == 110.0

    line = run_time_line("04_pretraining", out / "run_times.json", record=record)
    assert line.startswith("Run time of 04_pretraining, recorded: toy 390 s (")
    assert "fresh clone" in line and "its last run here: 390 s at 'toy'" in line
    assert run_time_line("09_seamless_rollout", None, record=record).endswith("none yet")


def test_recording_without_a_run_says_what_to_run(tmp_path):
    with pytest.raises(SystemExit, match="mimo-lite notebooks --profile toy"):
        record_run_times("toy", tmp_path, record=tmp_path / "r.json")


def test_watch_waits_for_running_calls_and_returns_their_results(tmp_path):
    import functools
    from concurrent.futures import ThreadPoolExecutor

    import matplotlib
    matplotlib.use("Agg")
    from mimo_lite.artifacts import Jobs
    from mimo_lite.notebook import watch

    metrics = tmp_path / "metrics.jsonl"

    def train(n):                                   # logs n steps, then returns its "folder"
        for step in range(1, n + 1):
            with metrics.open("a") as f:
                f.write(json.dumps({"step": step, "loss": 1.0 / step}) + "\n")
        return f"run of {n} steps"

    with ThreadPoolExecutor(1) as pool:             # a running call, as a worker process's would be
        handles = {"a": pool.submit(train, 3)}
        assert watch(handles, {"a": [tmp_path / "missing.jsonl", metrics]}, "loss", every=0.01) == {"a": "run of 3 steps"}
    assert len(metrics.read_text().splitlines()) == 3
    serial = Jobs(1).submit(functools.partial(str, 7))            # one process: runs when asked
    assert watch({"b": serial}, {}, "loss", every=0.01) == {"b": "7"}


def test_a_call_submitted_here_runs_in_this_process_when_asked():
    import functools
    import os

    from mimo_lite.artifacts import Jobs

    with Jobs(2) as jobs:                            # no worker starts for it
        handle = jobs.submit(functools.partial(os.getpid), here=True)
        assert handle.result() == os.getpid()
