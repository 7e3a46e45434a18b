"""Notebook 10's implementation exercise: the unbiased pass@k estimator."""

from __future__ import annotations

import math

from ..eval.estimators import pass_at_k
from .checking import Case, Mismatch, run_cases


def check_pass_at_k(fn):
    """Check `pass_at_k(n, correct, k) -> float` against `mimo_lite.eval.estimators.pass_at_k`.

    n: answers sampled for a problem; correct: how many of them are right; k ≤ n. Returns the
    chance that at least one of k answers drawn without replacement from the n is right:
    1 − C(n − correct, k) / C(n, k).
    """
    cases = []
    for name, n, c, k in [("n = 10, 3 right, k = 1", 10, 3, 1), ("n = 10, 3 right, k = 4", 10, 3, 4),
                          ("no right answer (n = 16, k = 8)", 16, 0, 8),
                          ("n = 5, 3 right, k = 4: every draw of 4 holds a right one", 5, 3, 4),
                          ("n = 200, 13 right, k = 100 (large binomials)", 200, 13, 100)]:
        mistakes = {
            "the biased estimate 1 − (1 − c/n)^k (sampling with replacement); Chen et al.'s "
            "estimator draws the k answers without replacement": 1 - (1 - c / n) ** k,
            "the fraction right, c/n, which is pass@1 only": c / n,
            "the chance that all k are right, C(c, k)/C(n, k), instead of at least one":
                math.comb(c, k) / math.comb(n, k),
        }
        cases.append(Case(name, (n, c, k), pass_at_k(n, c, k), mistakes))

    def compare(got, expected):
        try:
            value = float(got)
        except (TypeError, ValueError):
            raise Mismatch(f"expected a number, got {got!r}.") from None
        if not math.isclose(value, expected, rel_tol=1e-6, abs_tol=1e-9):
            raise Mismatch(f"expected {expected:.6g}, got {value:.6g}.")

    hint = ("Recall: pass@k = 1 − C(n − c, k) / C(n, k); math.comb gives exact binomials, and when "
            "n − c < k every draw holds a right answer.")
    return run_cases("pass@k", fn, cases, compare, "mimo_lite.eval.estimators.pass_at_k", hint)
