"""Rule-based rewards, as pure functions of a completion and the problem's fields.

MiMo uses accuracy rewards only: no format reward, no length penalty (report §3.2). Math is
checked with Math-Verify; code by running its tests, rewarded with the test-difficulty-driven
reward (report §3.3.1), which fights sparse rewards on hard problems.

Test-difficulty reward. The tests of a problem are graded into levels k = 1..K (Easy, Medium,
Hard; `difficulty.py`), level k holding the tests T_k and a score s_k with sum_k s_k = 1. The paper
gives the two schemes in words only; written out (facts file §4.4):
  strict  "a solution receives the reward corresponding to a difficulty level only if it passes
          all tests in that group as well as in all lower-difficulty groups":
              R = sum_k s_k * 1[every test in T_1 ∪ ... ∪ T_k passes]
  soft    "distributes the total score of each group equally among its tests. The final reward
          is the sum of the scores for all passed tests":
              R = sum_k sum_{t in T_k} (s_k / |T_k|) * 1[t passes]
The paper does not give the s_k. The kit's choice: equal shares, renormalised over the levels a
problem has (a problem with only Easy and Hard tests gives each 1/2).
"""

from __future__ import annotations

import functools
import json

from .sandbox import Limits, run_tests
from .verify import extract_program, math_answer_is_correct

LEVELS = ("Easy", "Medium", "Hard")
LEVEL_SCORES = {"Easy": 1 / 3, "Medium": 1 / 3, "Hard": 1 / 3}
SCHEMES = ("vanilla", "strict", "soft")


def vanilla_code_reward(passed: list[bool]) -> float:
    """1 if every test passes, else 0 (the all-or-nothing reward of DeepSeek-R1)."""
    return float(bool(passed) and all(passed))


def test_difficulty_reward(levels: list[str], passed: list[bool], scheme: str = "soft",
                           scores: dict[str, float] = LEVEL_SCORES) -> float:
    """MiMo's test-difficulty-driven reward: `levels[i]` is test i's level, `passed[i]` its result."""
    if len(levels) != len(passed) or not levels:
        raise ValueError(f"need one level per test result and at least one test, got "
                         f"{len(levels)} levels for {len(passed)} results")
    if scheme == "vanilla":
        return vanilla_code_reward(passed)
    present = [level for level in LEVELS if level in levels]
    unknown = set(levels) - set(LEVELS)
    if unknown:
        raise ValueError(f"unknown test levels {sorted(unknown)}: use {LEVELS}")
    total = sum(scores[level] for level in present)
    share = {level: scores[level] / total for level in present}              # s_k, sum 1
    groups = {level: [p for l, p in zip(levels, passed) if l == level] for level in present}
    if scheme == "strict":
        reward = 0.0
        for level in present:                                                # easy -> hard
            if not all(groups[level]):
                break                                                        # 1[T_1..T_k pass]
            reward += share[level]
        return reward
    if scheme == "soft":
        return sum(share[level] * sum(groups[level]) / len(groups[level]) for level in present)
    raise ValueError(f"unknown reward scheme {scheme!r}: use one of {SCHEMES}")


def math_reward(completion: str, answer: str, timeout_s: int = 5) -> float | None:
    """1.0 if the boxed final answer equals `answer` (Math-Verify), 0.0 if not, None if unjudgeable."""
    correct = math_answer_is_correct(completion, answer, timeout_s)
    return None if correct is None else float(correct)


def code_reward(completion: str, tests: list[dict], scheme: str = "soft",
                limits: Limits | None = None, prefix: str = "") -> float:
    """Run the answer's Python block on the tests; 0.0 without a block. Levels come with the tests.

    `prefix` is code placed before the answer's (a benchmark's function prompt, as HumanEval's).
    """
    program = extract_program(completion)
    if program is None:
        return 0.0
    program = f"{prefix}\n{program}" if prefix else program
    passed = list(_passed(program, json.dumps(tests, sort_keys=True), limits or Limits()))
    levels = [t.get("level") for t in tests]
    if scheme == "vanilla" or None in levels:
        return vanilla_code_reward(passed)
    return test_difficulty_reward(levels, passed, scheme)


@functools.lru_cache(maxsize=4096)
def _passed(program: str, tests: str, limits: Limits) -> tuple[bool, ...]:
    """Each test's verdict for one program, run once: a group of G answers often holds the same
    program several times, and the sandbox (one process per test) is the slow part of a reward."""
    return tuple(r.passed for r in run_tests(program, json.loads(tests), limits))


def score(problem: dict, completion: str, scheme: str = "soft",
          limits: Limits | None = None) -> float | None:
    """The reward of one completion for one problem of the JSONL contract (math or code)."""
    if problem["domain"] == "math":
        return math_reward(completion, problem["answer"])
    if problem["domain"] == "code":
        return code_reward(completion, problem["tests"], scheme, limits, problem.get("prefix", ""))
    raise ValueError(f"problem {problem.get('id')!r} has domain {problem['domain']!r}; "
                     f"expected 'math' or 'code'")
