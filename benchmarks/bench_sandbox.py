"""Sandbox throughput: the kit's `run_tests` against one fresh interpreter per test, run naively.

Workload: the golden solution of the first problem of every code family, on all of its tests
(typical, edge and large), as generated for the profile below. Both sides run the same
(program, test) pairs in this one process, one after the other, and must agree on every verdict.

  naive   `python -c <program + test>` (or the program with the test's stdin), one at a time, with
          the interpreter's usual start-up (site-packages) and none of the sandbox's limits
  kit     `run_tests`: one confined `python -I -S` per test, spread over the worker slots
  kit, 1  the same, one test at a time: the cost of the confinement alone

    python benchmarks/bench_sandbox.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from mimo_lite.tasks.problems import code_problems
from mimo_lite.tasks.sandbox import WORKERS, parse_test, run_tests


def naive(program: str, test: dict) -> bool:
    if "code" in test:
        done = subprocess.run([sys.executable, "-c", program + "\n" + test["code"]],
                              capture_output=True, timeout=10)
        return done.returncode == 0
    done = subprocess.run([sys.executable, "-c", program], input=test["input"].encode(),
                          capture_output=True, timeout=10)
    return done.returncode == 0 and done.stdout.decode().split() == test["output"].split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    problems = code_problems(families=9, variants=1, typical_tests=6, seed=0)
    jobs = [(p["solution"], t) for p in problems for t in p["tests"]]
    for _, test in jobs:
        parse_test(test)
    print(f"{len(jobs)} tests of {len(problems)} problems, {WORKERS} worker slots")

    def kit_parallel():
        return [r.passed for p in problems for r in run_tests(p["solution"], p["tests"])]

    def kit_one_at_a_time():
        return [run_tests(program, [test])[0].passed for program, test in jobs]

    def naive_all():
        return [naive(program, test) for program, test in jobs]

    rates, verdicts = {}, {}
    for name, run in [("naive", naive_all), ("kit", kit_parallel), ("kit, 1", kit_one_at_a_time)]:
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            verdicts[name] = run()
            best = min(best, time.perf_counter() - start)
        rates[name] = len(jobs) / best
        print(f"{name:8s} {rates[name]:7.1f} tests/s  ({best:.2f} s, {sum(verdicts[name])} passed)")
    assert verdicts["kit"] == verdicts["naive"] == verdicts["kit, 1"], "verdicts differ"
    print(f"kit / naive = {rates['kit'] / rates['naive']:.2f}x;  "
          f"kit, 1 worker / naive = {rates['kit, 1'] / rates['naive']:.2f}x")


if __name__ == "__main__":
    main()
