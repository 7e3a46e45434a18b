import doctest

import numpy as np
import pytest

from mimo_lite.eval import intervals
from mimo_lite.eval.intervals import bootstrap, compare, difference, proportion, wilson


def test_docstring_examples():
    assert doctest.testmod(intervals).failed == 0


@pytest.mark.parametrize("k, n", [(0, 5), (3, 10), (160, 320), (320, 320)])
def test_wilson_holds_the_rate_and_stays_in_0_1(k, n):
    low, high = wilson(k, n)
    assert 0 <= low <= k / n <= high <= 1


def test_wilson_narrows_with_more_answers():
    assert np.diff(wilson(20, 100)) > np.diff(wilson(200, 1000))


def test_bootstrap_of_a_mean_covers_it_and_separates_shifted_samples():
    rng = np.random.default_rng(0)
    a = list(rng.normal(0.0, 1.0, 40))
    b = [x + 2.0 for x in a]
    ia, ib = bootstrap(a, np.mean), bootstrap(b, np.mean)
    assert ia["low"] <= ia["estimate"] <= ia["high"] and ia["n"] == 40
    assert compare(ib, ia) == "higher" and compare(ia, ib) == "lower"
    assert compare(ia, bootstrap(list(rng.normal(0.0, 1.0, 40)), np.mean)) == "within noise"


def test_proportion_has_the_bootstrap_shape():
    p = proportion(30, 100)
    assert p["estimate"] == 0.3 and p["low"] < 0.3 < p["high"] and p["n"] == 100


def test_difference_of_two_rates_matches_newcombes_worked_example():
    # Newcombe (1998), Statistics in Medicine 17:873, Table II: 56/70 − 48/80, method 10
    d = difference(proportion(56, 70), proportion(48, 80))
    assert d["estimate"] == pytest.approx(0.2)
    assert (round(d["low"], 4), round(d["high"], 4)) == (0.0524, 0.3339)
    same = difference(proportion(12, 40), proportion(12, 40))
    assert same["estimate"] == 0 and same["low"] < 0 < same["high"]


def test_an_undefined_statistic_is_not_measured():
    ratio = bootstrap([dict(k=0, n=4)] * 3, lambda rows: sum(r["n"] for r in rows) / sum(r["k"] for r in rows)
                      if sum(r["k"] for r in rows) else float("nan"))
    assert ratio["estimate"] is None and ratio["n"] == 3
    assert compare(ratio, proportion(1, 2)) == "not measured" and intervals.fmt(ratio) == "n/a"


def test_a_runs_heldout_gain_is_newcombes_difference_with_its_verdict():
    from mimo_lite.rl.runs import heldout_gain

    def summary(before, after, n):
        return dict(heldout_before=dict(pass_at_1=before, answers=n), heldout_after=dict(pass_at_1=after, answers=n))

    g = heldout_gain(summary(0.25, 0.30, 800))
    d = difference(proportion(0.30 * 800, 800), proportion(0.25 * 800, 800))
    assert g["estimate"] == pytest.approx(0.05) and (g["low"], g["high"]) == (d["low"], d["high"])
    assert heldout_gain(summary(0.20, 0.30, 800))["verdict"] == "higher"
    assert heldout_gain(summary(0.25, 0.30, 40))["verdict"] == "within noise"     # too few answers
    assert heldout_gain(summary(0.50, 0.20, 800))["verdict"] == "lower"
