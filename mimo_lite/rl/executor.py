"""The reward executor: scores finished completions in a process pool, off the generation path.

MiMo computes rewards asynchronously, next to the rollouts, on dedicated workers (report
§3.4.1 (b)). Here a pool of processes does it: Math-Verify enforces its time limit with SIGALRM,
which works only in a process's main thread, so threads will not do; code answers run inside the
sandbox (`sandbox.py`), started from the worker.

A reward that cannot be computed is never guessed. When the reward function raises, the sandbox
fails, a worker dies, or the verifier cannot judge (it returns None), the sample is *unscored*:
its `reason` says why, it is logged, left out of its group's advantages and counted in the metrics.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable

from ..artifacts import exit_with_parent
from ..tasks.rewards import score

log = logging.getLogger("mimo_lite.rl")


@dataclass(frozen=True)
class Scored:
    reward: float | None           # None: unscored
    reason: str | None = None      # why it is unscored

    @property
    def ok(self) -> bool:
        return self.reward is not None


def _ready() -> None:
    """Nothing: a worker that runs it has started and imported the kit."""


def score_safely(score_fn: Callable, problem: dict, completion: str, scheme: str) -> Scored:
    """Run one reward function, turning every failure into an unscored result with its reason."""
    try:
        reward = score_fn(problem, completion, scheme)
    except Exception as err:                                   # noqa: BLE001 — reported, not hidden
        return Scored(None, f"{type(err).__name__}: {err}"[:300])
    if reward is None:
        return Scored(None, "the verifier could not judge this answer (returned None)")
    return Scored(float(reward))


class RewardExecutor:
    """`submit(problem, completion)` returns a Future of `Scored`; `workers` processes score them.

    `score_fn(problem, completion, scheme)` defaults to `rewards.score`; `scheme` is the code
    reward (vanilla, strict or soft). Use it as a context manager, or call `close()`. The workers
    are spawned: a script that starts an executor (or `train_grpo`) keeps its top-level code
    under `if __name__ == "__main__":`, since each worker imports the script's module again.
    """

    def __init__(self, workers: int = 1, scheme: str = "soft", score_fn: Callable = score):
        self.workers, self.scheme, self.score_fn = workers, scheme, score_fn
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, never fork: a fork copies the trainer's CUDA context and torch's thread pools, which
        # the child cannot use (CUDA refuses a forked child; a lock held by another thread stays
        # held). A spawned worker starts clean and imports the kit itself, so `score_fn` must be
        # importable: a module-level function, not a lambda or a notebook cell's function. The
        # default one imports the verifier and the sandbox, never torch (`mimo_lite/__init__.py`).
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=exit_with_parent)
        # Start the workers now (each imports Math-Verify and SymPy: under a second), not at the
        # first answer, so that the reward latency a run measures (notebook 09) is the verifier's,
        # not a process start's.
        for started in [pool.submit(_ready) for _ in range(self.workers)]:
            started.result()
        return pool

    def submit(self, problem: dict, completion: str) -> Future:
        try:
            inner = self.pool.submit(score_safely, self.score_fn, problem, completion, self.scheme)
        except BrokenProcessPool:
            self.pool = self._new_pool()
            inner = self.pool.submit(score_safely, self.score_fn, problem, completion, self.scheme)
        outer: Future = Future()

        def done(f: Future) -> None:
            try:
                outer.set_result(f.result())
            except Exception as err:                           # noqa: BLE001 — a worker died
                outer.set_result(Scored(None, f"reward worker failed: {type(err).__name__}: {err}"[:300]))
        inner.add_done_callback(done)
        return outer

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def log_unscored(problem: dict, scored: Scored) -> None:
    log.warning("unscored sample of %s: %s", problem.get("id"), scored.reason)
