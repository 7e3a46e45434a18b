"""95% intervals for the ablations, and the verdict they allow.

An ablation at toy scale compares two short runs; their difference means something only when it
exceeds the noise. Two intervals are used:

- `wilson(successes, n)`: a pass rate measured on n sampled answers (held-out pass@1). Answers to
  the same problem are not independent, so read it as a lower bound on the real uncertainty.
- `bootstrap(rows, statistic)`: any statistic of a run's steps (a mean, a std, a ratio of sums),
  with the steps resampled with replacement. Neighbouring steps are correlated, so this interval
  too is on the narrow side.

`difference(a, b)` is a − b for two such pass rates, with Newcombe's interval built from theirs.
`compare(a, b)` then says "higher", "lower" or "within noise" for a against b: a verdict only
where the two intervals do not overlap ("not measured" where a statistic had no data, e.g. a
ratio over steps that found no group with signal).
"""

from __future__ import annotations

import math

import numpy as np


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% for z = 1.96).

    >>> [round(x, 3) for x in wilson(16, 320)]
    [0.031, 0.08]
    >>> wilson(0, 10)[0]
    0.0
    """
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))   # rounding at p = 0, 1


def bootstrap(rows: list, statistic, reps: int = 2000, seed: int = 0) -> dict:
    """`statistic(rows)` with a 95% percentile interval over `reps` resamples of the rows
    (estimate and bounds None where the statistic is undefined: no rows, or a ratio over zero).

    >>> r = bootstrap([1.0, 2.0, 3.0, 4.0], lambda xs: float(np.mean(xs)))
    >>> r["estimate"], r["low"] <= 2.5 <= r["high"]
    (2.5, True)
    """
    estimate = float(statistic(rows)) if rows else math.nan
    if not math.isfinite(estimate):
        return dict(estimate=None, low=None, high=None, n=len(rows))
    rng = np.random.default_rng(seed)
    draws = [statistic([rows[i] for i in rng.integers(0, len(rows), len(rows))]) for _ in range(reps)]
    draws = [d for d in draws if d is not None and math.isfinite(d)]
    low, high = (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))) if draws else (estimate, estimate)
    return dict(estimate=estimate, low=min(low, estimate), high=max(high, estimate), n=len(rows))


def proportion(successes: float, n: int) -> dict:
    """A pass rate with its Wilson interval, in the same shape as `bootstrap`'s result."""
    low, high = wilson(successes, n)
    return dict(estimate=successes / n if n else 0.0, low=low, high=high, n=n)


def difference(a: dict, b: dict) -> dict:
    """a − b for two pass rates in `proportion`'s shape, with Newcombe's 95% interval: each side's
    distance to its own Wilson bound, added in quadrature. It treats a and b as independent, so
    for the same problems measured twice (before and after training) it is on the wide side.

    >>> d = difference(proportion(30, 100), proportion(20, 100))
    >>> round(d["estimate"], 2), d["low"] < 0 < d["high"]
    (0.1, True)
    >>> difference(proportion(60, 100), proportion(20, 100))["low"] > 0
    True
    """
    estimate = a["estimate"] - b["estimate"]
    low = estimate - math.hypot(a["estimate"] - a["low"], b["high"] - b["estimate"])
    high = estimate + math.hypot(a["high"] - a["estimate"], b["estimate"] - b["low"])
    return dict(estimate=estimate, low=low, high=high, n=min(a["n"], b["n"]))


def compare(a: dict, b: dict) -> str:
    """'higher' or 'lower' when a's interval lies wholly above or below b's, else 'within noise'.

    >>> compare(dict(low=0.3, high=0.4), dict(low=0.1, high=0.2))
    'higher'
    >>> compare(dict(low=0.1, high=0.3), dict(low=0.2, high=0.4))
    'within noise'
    """
    if None in (a["low"], b["low"]):
        return "not measured"
    if a["low"] > b["high"]:
        return "higher"
    if a["high"] < b["low"]:
        return "lower"
    return "within noise"


def fmt(x: dict, digits: int = 3, signed: bool = False) -> str:
    """'0.223 [0.190, 0.259]'; with `signed`, a difference: '+0.050 [-0.012, +0.110]'."""
    if x["estimate"] is None:
        return "n/a"
    f = f"{'+' if signed else ''}.{digits}f"
    return f"{x['estimate']:{f}} [{x['low']:{f}}, {x['high']:{f}}]"
