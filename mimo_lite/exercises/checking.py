"""What every checker shares: the verdict it returns, and how it runs and compares a learner's function.

A checker feeds hidden inputs (fixed seeds) to the learner's function and to the library's own
implementation, case by case, and stops at the first case where they differ. Its verdict is a
`CheckResult` that prints as one paragraph: what was checked, or the first mismatch in teaching
terms. Before it falls back to "expected … got …", a checker tries a few *likely mistakes* on the
same input; when the learner's output equals one of them, the verdict names that mistake.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import torch

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted yet"


@dataclass
class CheckResult:
    """The verdict on one exercise. `bool(result)` is True only when it passed."""

    exercise: str
    status: str       # PASSED, FAILED or NOT_ATTEMPTED
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "·"}[self.status]
        return textwrap.fill(f"{mark} {self.exercise}: {self.status}. {self.message}", width=100)

    __repr__ = __str__


@dataclass
class Case:
    """One hidden input: a description for the learner, the arguments, and the library's answer.

    `mistakes` maps an explanation to the output that mistake would give on these arguments.
    """

    name: str
    args: tuple
    expected: object
    mistakes: dict


class Mismatch(Exception):
    """Raised by a comparison; its message says what differs."""


def clone(value):
    """A deep-enough copy of the arguments, so a function that writes into them harms nothing."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(clone(v) for v in value)
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    return value


def run_cases(exercise: str, fn, cases, compare, checked: str, hint: str) -> CheckResult:
    """Call `fn` on each case; the first difference from the library ends the check.

    compare(got, expected) raises `Mismatch` with a description; `hint` is the generic advice
    given when the output matches none of the case's likely mistakes.
    """
    if not callable(fn):
        return CheckResult(exercise, FAILED, f"pass your function itself (got {type(fn).__name__}).")
    for case in cases:
        try:
            got = fn(*clone(case.args))
        except NotImplementedError:
            return CheckResult(exercise, NOT_ATTEMPTED, "Replace the `raise NotImplementedError` "
                               "with your implementation and run the cell again.")
        except Exception as err:                                   # the learner's bug, explained
            advice = ("Which denominator can be zero on this input?" if isinstance(err, ZeroDivisionError)
                      else "Check the shapes and types the signature promises against what your "
                           "code assumes.")
            return CheckResult(exercise, FAILED, f"On {case.name}, your function raised "
                               f"{type(err).__name__}: {err}. {advice}")
        try:
            compare(got, case.expected)
        except Mismatch as why:
            for mistake, wrong in case.mistakes.items():
                try:
                    compare(got, wrong)
                except Mismatch:
                    continue
                return CheckResult(exercise, FAILED, f"On {case.name}: {why} Your output equals "
                                   f"what this mistake gives: {mistake}.")
            return CheckResult(exercise, FAILED, f"On {case.name}: {why} {hint}".strip())
    names = "; ".join(c.name for c in cases)
    return CheckResult(exercise, PASSED, f"Your function matches {checked} on all {len(cases)} "
                       f"hidden inputs ({names}).")


def compare_tensors(got, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Shape, dtype, then values within tolerance; the message names the first thing that differs."""
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"expected a tensor, got {type(got).__name__}.")
    if got.shape != expected.shape:
        raise Mismatch(f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}.")
    if got.dtype != expected.dtype:
        raise Mismatch(f"expected dtype {expected.dtype} (the input's), got {got.dtype}: compute in "
                       f"float32 if you like, but cast the result back.")
    got, expected = got.detach().float(), expected.detach().float()
    if not torch.isfinite(got).all() and torch.isfinite(expected).all():
        raise Mismatch(f"your output holds {int((~torch.isfinite(got)).sum())} NaN or infinite "
                       f"values where the library's is finite (a division by zero?).")
    close = torch.isclose(got, expected, atol=atol, rtol=rtol)
    if not close.all():
        where = tuple(int(i) for i in (~close).nonzero()[0]) if got.dim() else ()
        diff = (got - expected).abs().max().item()
        raise Mismatch(f"the values differ (largest difference {diff:.3g}); first at index "
                       f"{where}: expected {expected[where].item():.6g}, got {got[where].item():.6g}.")
