"""The Ray reward executor on a local Ray instance of 2 CPUs: the process pool's scores, dedicated
code workers, and a killed worker's answers scored again or reported unscored with the reason."""

import logging
import os
import signal
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[scaled]'); the "
                                        "process pool it stands in for is tested in test_grpo.py")

from mimo_lite.rl.executor import RewardExecutor, Scored          # noqa: E402
from mimo_lite.rl.ray_rewards import RayRewardExecutor            # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # The workers unpickle this file's score functions by importing it, as spawned processes do:
    # they get this folder and the kit on their path. One unit of "reward" per CPU, as a reward
    # machine is started with (ray_rewards.py's docstring).
    path = os.pathsep.join([str(Path(__file__).parent), str(ROOT), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, resources={"reward": 2}, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def fenced(program: str) -> str:
    return f"<think>x</think>\n```python\n{program}\n```"


def mixed_batch() -> list[tuple[dict, str]]:
    """Math answers right, wrong and without a box; code answers passing all, some and none of
    their tests (stdin/stdout, an assertion, graded levels), and one without a program."""
    sq = {"id": "sq", "domain": "math", "prompt": "7^2?", "answer": "49"}
    half = {"id": "half", "domain": "math", "prompt": "1/2 + 1/4?", "answer": "\\frac{3}{4}"}
    echo = {"id": "echo", "domain": "code", "prompt": "p", "tests": [{"input": "3", "output": "3\n"}]}
    double = {"id": "double", "domain": "code", "prompt": "p",
              "tests": [{"code": "assert f(2) == 4", "level": "Easy"},
                        {"code": "assert f(-3) == -6", "level": "Medium"},
                        {"code": "assert f(10**6) == 2 * 10**6", "level": "Hard"}]}
    return [(sq, "</think> \\boxed{49}"), (sq, "</think> \\boxed{48}"), (sq, "</think> 49"),
            (half, "</think> \\boxed{0.75}"), (half, "</think> \\boxed{\\frac{1}{2}}"),
            (echo, fenced("print(input())")), (echo, fenced("print(int(input()) + 1)")),
            (double, fenced("def f(x):\n    return 2 * x")),
            (double, fenced("def f(x):\n    return 2 * abs(x) if x < 100 else 0")),
            (double, fenced("def f(x):\n    return x")), (double, "<think>x</think> no program")]


def test_ray_scores_a_mixed_batch_as_the_process_pool_does():
    batch = mixed_batch()
    with RewardExecutor(2) as pool:
        expected = [f.result() for f in [pool.submit(p, c) for p, c in batch]]
    with RayRewardExecutor(math_workers=1, code_workers=1, resource="reward") as executor:
        assert ray.available_resources().get("reward", 0) == 0      # both workers hold one unit
        got = [f.result(timeout=120) for f in [executor.submit(p, c) for p, c in batch]]
    assert got == expected
    # the batch tells the schemes apart: soft partial credit 1/3, every kind of verdict present
    assert [s.reward for s in got] == pytest.approx([1, 0, 0, 1, 0, 1, 0, 1, 1 / 3, 0, 0])


DRIVER = {"changed": False}          # set in this process only: a fork would see it, a fresh one not


def worker_pid(problem, text, scheme):
    """The worker's pid, or -1 in a worker forked from the test process."""
    return -1.0 if DRIVER["changed"] else float(os.getpid())


def test_code_answers_run_on_their_own_freshly_started_workers():
    DRIVER["changed"] = True
    batch = mixed_batch()
    with RayRewardExecutor(math_workers=1, code_workers=1, score_fn=worker_pid) as executor:
        pids = [(p["domain"], f.result(timeout=60).reward)
                for (p, _), f in [(a, executor.submit(*a)) for a in batch]]
        math = {pid for domain, pid in pids if domain == "math"}
        code = {pid for domain, pid in pids if domain == "code"}
        linux = Path("/proc/self/maps").exists()       # where a process's mapped libraries are read
        libraries = [Path(f"/proc/{int(pid)}/maps").read_text() for pid in math | code if linux and pid > 0]
    assert not any("libtorch" in text for text in libraries)      # the kit's rewards need no torch
    assert len(math) == len(code) == 1 and math != code
    assert -1.0 not in math | code and os.getpid() not in math | code


def slow_reward(problem, text, scheme):
    """The worker's pid for "pid"; otherwise the answer's number, after 0.3 s of scoring."""
    if text == "pid":
        return float(os.getpid())
    time.sleep(0.3)
    return float(text)


def test_a_killed_worker_s_answers_are_scored_again(caplog):
    problem = {"id": "m", "domain": "math"}
    with caplog.at_level(logging.WARNING, logger="mimo_lite.rl"), \
            RayRewardExecutor(math_workers=1, code_workers=1, score_fn=slow_reward) as executor:
        pid = int(executor.submit(problem, "pid").result(timeout=60).reward)
        futures = [executor.submit(problem, str(i)) for i in range(6)]
        futures[0].result(timeout=60)                  # the first is scored, the second in flight
        os.kill(pid, signal.SIGKILL)
        assert [f.result(timeout=120) for f in futures] == [Scored(float(i)) for i in range(6)]
        restarted = int(executor.submit(problem, "pid").result(timeout=60).reward)
    assert restarted != pid
    assert len([r for r in caplog.records if "died while scoring" in r.getMessage()]) == 1


def die_on_poison(problem, text, scheme):
    if text == "poison":
        os.kill(os.getpid(), signal.SIGKILL)
    return float(text)


def test_an_answer_that_kills_its_worker_twice_is_reported_unscored():
    problem = {"id": "m", "domain": "math"}
    with RayRewardExecutor(math_workers=1, code_workers=1, score_fn=die_on_poison) as executor:
        got = [f.result(timeout=120) for f in
               [executor.submit(problem, text) for text in ("1", "poison", "0", "1")]]
    assert [s.reward for s in got] == [1.0, None, 0.0, 1.0]          # the others are never hit
    assert got[1].reason.startswith("reward worker died twice: ")


def test_answers_of_a_kind_whose_workers_are_all_lost_are_reported_unscored():
    problem = {"id": "m", "domain": "math"}
    with RayRewardExecutor(math_workers=1, code_workers=1, score_fn=slow_reward) as executor:
        ray.kill(executor.idle["math"][0])             # no restart: lost for good
        first = executor.submit(problem, "1").result(timeout=60)
        later = executor.submit(problem, "1").result(timeout=5)
        code = executor.submit({"id": "c", "domain": "code"}, "1").result(timeout=60)
    assert first.reward is None and first.reason.startswith("no math reward worker left: ")
    assert later == first and code == Scored(1.0)
