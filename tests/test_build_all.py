"""Independent artifacts built side by side (`artifacts.build_all`, the profile's `processes`)."""

import functools
import operator
import os

import pytest

from mimo_lite.artifacts import Jobs, Then, build_all
from mimo_lite.profile import load_profile


def test_two_processes_return_every_result_in_order_from_other_processes():
    calls = [functools.partial(pow, 2, k) for k in range(5)] + [functools.partial(os.getpid)] * 2
    results = build_all(calls, processes=2)
    assert results[:5] == [1, 2, 4, 8, 16]
    assert os.getpid() not in results[5:]


def test_one_process_runs_here_in_order():
    assert build_all([functools.partial(os.getpid), functools.partial(abs, -3)], processes=1) == [os.getpid(), 3]


def test_an_error_in_a_worker_reaches_the_caller():
    with pytest.raises(ValueError, match="invalid literal"):
        build_all([functools.partial(int, "7"), functools.partial(int, "seven")], processes=2)


def test_processes_is_a_checked_setting():
    assert load_profile("toy").processes == 2 and load_profile("smoke").processes == 1
    with pytest.raises(ValueError, match="processes"):
        load_profile("smoke", {"processes": "0"})


def test_jobs_run_queued_calls_side_by_side_and_return_each_result():
    with Jobs(2, threads=1) as jobs:
        first = jobs.submit(functools.partial(os.getpid))
        later = jobs.submit(Then(functools.partial(int, "7"), functools.partial(operator.mul, 6)))
        assert later.result() == 42
        assert first.result() != os.getpid()       # ran in a worker process


def test_jobs_with_one_process_run_each_call_here_when_its_result_is_asked_for():
    calls = []
    jobs = Jobs(1)
    a = jobs.submit(functools.partial(calls.append, "a"))
    b = jobs.submit(functools.partial(calls.append, "b"))
    assert calls == []                             # nothing ran yet
    b.result(), a.result(), b.result()
    assert calls == ["b", "a"]                     # in the order asked, each once


_ORPHANED = """
import functools, multiprocessing, os, signal, time
from mimo_lite.artifacts import Jobs
from mimo_lite.rl.executor import RewardExecutor
if __name__ == "__main__":
    jobs = Jobs(2)
    jobs.submit(functools.partial(time.sleep, 300))          # one worker busy, as in a build
    jobs.submit(functools.partial(os.getpid)).result()
    rewards = RewardExecutor(workers=1)
    time.sleep(0.5)
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)                      # the parent dies without cleaning up
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"   # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads process states from /proc (Linux)")
def test_workers_end_when_their_parent_is_killed(tmp_path):
    """A killed kernel or command must not leave a worker training on its own (holding a GPU's
    memory and writing into the run folder the resumed run uses)."""
    import subprocess
    import sys
    import time

    script = tmp_path / "orphans.py"
    script.write_text(_ORPHANED)
    out, err = tmp_path / "pids.txt", tmp_path / "stderr.txt"
    with out.open("w") as o, err.open("w") as e:   # files, not pipes: a surviving worker keeps a pipe open
        subprocess.run([sys.executable, str(script)], stdout=o, stderr=e, timeout=120)
    pids = [int(p) for p in out.read_text().split()]
    assert len(pids) == 3, err.read_text()[-2000:]  # two build workers, one reward worker
    deadline = time.monotonic() + 20
    while any(map(_running, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if _running(p)]
    for p in left:
        os.kill(p, 9)
    assert not left, f"workers {left} outlived their killed parent"


# --- one builder per artifact: commands started together wait for each other's builds ---

def _build_slowly(profile, runs_root=None):
    """A stand-in `ensure_*`: builds `marker` once (slowly), and says whether this call built it."""
    import time
    from pathlib import Path

    from mimo_lite.artifacts import runs_dir

    marker = runs_dir(profile, runs_root) / "slow" / "BUILT"
    if marker.exists():
        return "loaded", os.getpid()
    time.sleep(1.0)                                   # long enough for the other call to arrive
    Path(marker).parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))
    return "built", os.getpid()


def _ensure_slow(profile, runs_root=None):
    from mimo_lite.artifacts import one_builder
    return one_builder("slow")(_build_slowly)(profile, runs_root)


def test_two_processes_ensuring_one_artifact_build_it_once(tmp_path):
    calls = [functools.partial(_ensure_slow, "smoke", tmp_path)] * 2
    outcomes = build_all(calls, processes=2)
    assert sorted(kind for kind, _ in outcomes) == ["built", "loaded"]   # unlocked: built, built
    assert outcomes[0][1] != outcomes[1][1]                              # two processes
    assert (tmp_path / "smoke" / ".slow.lock").exists()


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    from mimo_lite.artifacts import claim

    lock = tmp_path / ".x.lock"
    with claim(lock), claim(lock):                    # a builder calling another of the same name
        pass
    with claim(lock):                                 # and released afterwards
        pass


def test_a_wait_for_a_lock_is_announced_only_when_it_outlasts_a_check(tmp_path, capsys, monkeypatch):
    import threading
    import time

    from mimo_lite import artifacts

    fcntl = pytest.importorskip("fcntl")
    monkeypatch.setattr(artifacts, "SAY_WAIT_AFTER_S", 0.5)
    lock = tmp_path / ".x.lock"
    for hold_s, lines in ((0.1, 0), (1.5, 1)):       # a check's moment: silent; a build's wait: one line
        other = open(lock, "a")                       # another holder: flock conflicts between open files
        fcntl.flock(other, fcntl.LOCK_EX)
        threading.Timer(hold_s, other.close).start()  # closing releases it
        t0 = time.monotonic()
        with artifacts.claim(lock):
            waited = time.monotonic() - t0
        assert waited >= 0.9 * hold_s
        assert capsys.readouterr().out.count("[mimo-lite] waiting for another process") == lines
