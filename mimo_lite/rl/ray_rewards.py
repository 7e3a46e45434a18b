"""The reward executor on Ray: the process pool's interface (`executor.py`), on CPUs across machines.

At 7B a step scores 512 answers while the GPUs decode, too many for the trainer's own CPUs; MiMo
scores them on dedicated workers (report §3.4.1 (b)). Here each worker is a Ray actor holding one
CPU. Ray's node daemon starts it as a fresh Python process, never a fork of the trainer, so no
CUDA context or thread pool is copied: the process pool's spawn rule holds, and for the same
reason `score_fn` must be importable (a module-level function). A worker scores in its process's
main thread, where Math-Verify's SIGALRM time limit works.

Math and code answers have workers of their own: a code answer runs its tests in the sandbox
(`tasks/sandbox.py`, one process per test), seconds of CPU, and must not hold up the
millisecond math checks queued behind it.

A worker is given one answer at a time; the others wait here, in the trainer's process. So a
worker that dies (killed, out of memory, its machine lost) takes only the answer it was scoring.
Ray restarts the worker, and that answer is scored again, once, by the next free worker of its
kind; if a worker dies on it a second time, the answer is *unscored* with that reason, never guessed (an answer that kills its
verifier is not retried forever).

A reward cluster, the trainer's node at its head:
    ray start --head --port=6379 --num-cpus=0                 # trainer node: no reward work
    ray start --address=HEAD:6379 --num-cpus=64 --resources='{"reward": 64}'   # each CPU machine
then, in the trainer, with RAY_ADDRESS=HEAD:6379 set (or after `ray.init(address="HEAD:6379")`):
    RayRewardExecutor(math_workers=16, code_workers=112, resource="reward")
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

from ..tasks.rewards import score
from .executor import Scored, score_safely

log = logging.getLogger("mimo_lite.rl")
START_TIMEOUT_S = 300        # for the workers to start: longer means no node can hold them


class RewardWorker:
    """One CPU of a reward machine: scores the answers it is given, one at a time."""

    def __init__(self, score_fn: Callable, scheme: str):
        self.score_fn, self.scheme = score_fn, scheme

    def ready(self) -> None:
        """Nothing: a worker that answers has started and imported the kit."""

    def score(self, problem: dict, completion: str) -> Scored:
        return score_safely(self.score_fn, problem, completion, self.scheme)


@dataclass
class _Answer:
    problem: dict
    completion: str
    result: Future = field(default_factory=Future)
    deaths: int = 0                                  # workers that died while scoring it


class RayRewardExecutor:
    """`submit(problem, completion)` returns a Future of `Scored`, as `RewardExecutor` does.

    `math_workers` and `code_workers` Ray actors of one CPU each (code answers go to the code
    workers only); `resource` names a custom Ray resource each worker also takes one unit of, so
    that the workers land only on the machines started with it. Joins the Ray cluster of
    RAY_ADDRESS, or starts a local one, unless Ray is already initialised.
    """

    def __init__(self, math_workers: int = 1, code_workers: int = 1, scheme: str = "soft",
                 score_fn: Callable = score, resource: str | None = None):
        if math_workers < 1 or code_workers < 1:
            raise ValueError(f"need at least one math and one code worker, got {math_workers} and "
                             f"{code_workers}")
        ray = _import_ray()
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            ray.init()
        self.workers = math_workers + code_workers          # the Seamless scheduler's reward servers
        options = dict(num_cpus=1, max_restarts=-1, max_task_retries=0)   # restarted; retried here, not by Ray
        if resource:
            options["resources"] = {resource: 1}
        actor = ray.remote(RewardWorker).options(**options)
        self.idle = {kind: deque(actor.remote(score_fn, scheme) for _ in range(n))
                     for kind, n in (("math", math_workers), ("code", code_workers))}
        self.actors = [a for pool in self.idle.values() for a in pool]
        self.waiting: dict[str, deque[_Answer]] = {"math": deque(), "code": deque()}
        self.alive = {"math": math_workers, "code": code_workers}
        self.lost: dict[str, str | None] = {"math": None, "code": None}    # why a kind has no worker
        self.lock = threading.RLock()         # a Ray callback may run inside submit, on this thread
        self.closed = False
        try:   # started now, not at the first answer: a run's reward latency is the verifier's
            ray.get([a.ready.remote() for a in self.actors], timeout=START_TIMEOUT_S)
        except BaseException as err:
            self.close()
            if not isinstance(err, ray.exceptions.GetTimeoutError):
                raise                                  # e.g. a worker cannot import `score_fn`
            where = f"free CPUs with the resource {resource!r}" if resource else "free CPUs"
            start = "ray start --address=HEAD:6379 --num-cpus=N"
            if resource:
                start += f""" --resources='{{"{resource}": N}}'"""
            raise RuntimeError(f"{self.workers} reward workers did not start in {START_TIMEOUT_S} s: "
                               f"the Ray cluster lacks {where} (`ray status` shows what it has; "
                               f"add reward machines with `{start}`)") from None

    def submit(self, problem: dict, completion: str) -> Future:
        answer = _Answer(problem, completion)
        with self.lock:
            kind = _kind(problem)
            if self.lost[kind]:
                answer.result.set_result(Scored(None, self.lost[kind]))
            else:
                self.waiting[kind].append(answer)
                self._dispatch()
        return answer.result

    def _dispatch(self) -> None:
        """Give each idle worker the oldest answer waiting for its kind (lock held)."""
        for kind, waiting in self.waiting.items():
            while waiting and self.idle[kind] and not self.closed:
                worker, answer = self.idle[kind].popleft(), waiting.popleft()
                future = worker.score.remote(answer.problem, answer.completion).future()
                future.add_done_callback(lambda f, k=kind, w=worker, a=answer: self._scored(k, w, a, f))

    def _scored(self, kind: str, worker, answer: _Answer, future: Future) -> None:
        ray = _import_ray()
        try:
            scored = future.result()
        except ray.exceptions.RayActorError as err:
            self._died(kind, worker, answer, err)
            return
        except Exception as err:                                    # noqa: BLE001 — reported, not hidden
            scored = Scored(None, f"reward worker failed: {type(err).__name__}: {err}"[:300])
        answer.result.set_result(scored)
        with self.lock:
            self.idle[kind].append(worker)
            self._dispatch()

    def _died(self, kind: str, worker, answer: _Answer, err: Exception) -> None:
        """The worker died scoring `answer` (it was alive when given it): score it again, once."""
        answer.deaths += 1
        with self.lock:
            if self.closed:
                answer.result.set_result(Scored(None, "reward executor closed before scoring it"))
                return
            if answer.deaths == 1:
                log.warning("a reward worker died while scoring an answer of %s; scoring it again "
                            "once a worker is free", answer.problem.get("id"))
                self.waiting[kind].appendleft(answer)
                self._dispatch()
            else:
                answer.result.set_result(Scored(None, f"reward worker died twice: {type(err).__name__}: "
                                                      f"{err}"[:300]))
        threading.Thread(target=self._revive, args=(kind, worker), daemon=True).start()

    def _revive(self, kind: str, worker) -> None:
        """Wait for Ray to restart a dead worker (a call to a restarting one fails at once), then
        give it answers again; a worker Ray will not restart is lost."""
        ray = _import_ray()
        while not self.closed:
            try:
                ray.get(worker.ready.remote())
            except ray.exceptions.ActorUnavailableError:             # restarting
                time.sleep(0.5)
                continue
            except Exception as gone:                                # noqa: BLE001 — Ray gave it up
                if not self.closed:
                    self._lose(kind, gone)
                return
            with self.lock:
                self.idle[kind].append(worker)
                self._dispatch()
            return

    def _lose(self, kind: str, err: Exception) -> None:
        with self.lock:
            self.alive[kind] -= 1
            log.error("a %s reward worker is lost for good (%s); %d left", kind, type(err).__name__,
                      self.alive[kind])
            if self.alive[kind] == 0:         # nobody left to score this kind: say so, never wait
                self.lost[kind] = f"no {kind} reward worker left: {type(err).__name__}: {err}"[:300]
                while self.waiting[kind]:
                    self.waiting[kind].popleft().result.set_result(Scored(None, self.lost[kind]))

    def close(self) -> None:
        ray = _import_ray()
        with self.lock:
            self.closed = True
            for waiting in self.waiting.values():
                while waiting:
                    waiting.popleft().result.set_result(Scored(None, "reward executor closed before scoring it"))
        for worker in self.actors:
            ray.kill(worker)
        if self.started_ray:
            ray.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _kind(problem: dict) -> str:
    return "code" if problem.get("domain") == "code" else "math"


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise ImportError("RayRewardExecutor needs Ray: `pip install 'ray[default]'`, or build the "
                          "scaled environment with `make scaled-env`; on one machine the process "
                          "pool (`executor.RewardExecutor`) needs nothing more") from err
    return ray
