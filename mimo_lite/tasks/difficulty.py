"""Test difficulty: grade each test of a problem Easy, Medium or Hard from its pass rate.

MiMo (report §3.3.1, Figure 5): "We utilize several models to perform multiple rollouts on each
problem, and calculate the pass rate for each test case across all model-generated solutions. We
then cluster the test cases into different difficulty levels according to their pass rates, with
lower pass rates indicating higher difficulty." The paper names neither the clustering method nor
its thresholds; the kit clusters the pass rates of one problem with exact one-dimensional k-means
(k = 3, fewer when the pass rates take fewer distinct values).

At toy scale the "models" are the problem's golden solution and deliberately weaker ones (each
fails a different kind of test); with trained checkpoints, pass their sampled programs instead.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .rewards import LEVELS
from .sandbox import WORKERS, Limits, run_tests


def pass_rates(passed: list[list[bool]]) -> list[float]:
    """(solutions, tests) pass/fail matrix -> each test's pass rate over the solutions."""
    if not passed or not passed[0]:
        raise ValueError("need at least one solution and one test to compute pass rates")
    return [sum(column) / len(passed) for column in zip(*passed)]


def difficulty_levels(rates: list[float], n_levels: int = 3) -> list[str]:
    """Cluster pass rates into levels: the highest-rate cluster is Easy, the lowest Hard.

    With fewer distinct rates than levels, the clusters keep the easy and hard ends: two clusters
    are Easy and Hard, one cluster is Easy.
    """
    distinct = sorted(set(rates), reverse=True)
    counts = [rates.count(r) for r in distinct]
    k = min(n_levels, len(distinct))
    names = {1: ["Easy"], 2: ["Easy", "Hard"], 3: list(LEVELS)}[k]
    cluster_of = dict(zip(distinct, _kmeans_1d(distinct, counts, k)))
    return [names[cluster_of[r]] for r in rates]


def _kmeans_1d(values: list[float], counts: list[int], k: int) -> list[int]:
    """Optimal k-means of sorted values with multiplicities: the best k contiguous groups.

    Dynamic programming over group boundaries; cost = within-group sum of squared deviations.
    """
    n = len(values)

    def cost(i, j):
        weight = sum(counts[i:j])
        mean = sum(v * c for v, c in zip(values[i:j], counts[i:j])) / weight
        return sum(c * (v - mean) ** 2 for v, c in zip(values[i:j], counts[i:j]))

    best = {(0, 0): (0.0, 0)}             # (groups, values covered) -> (cost, start of last group)
    for g in range(1, k + 1):
        for j in range(g, n + 1):
            best[g, j] = min((best[g - 1, i][0] + cost(i, j), i)
                             for i in range(g - 1, j) if (g - 1, i) in best)
    labels, j = [0] * n, n
    for g in range(k, 0, -1):             # walk the boundaries back from the last group
        i = best[g, j][1]
        labels[i:j] = [g - 1] * (j - i)
        j = i
    return labels


def grade_problem(problem: dict, solutions: dict[str, str],
                  limits: Limits | None = None) -> dict:
    """Run every solution on the problem's tests; return the matrix, the pass rates and levels.

    Returns {"solutions": names, "passed": (solutions, tests) bools, "pass_rates", "levels",
    "statuses": (solutions, tests) verdicts}.
    """
    names = list(solutions)
    with ThreadPoolExecutor(WORKERS) as pool:         # the sandbox's slots bound the processes
        runs = list(pool.map(lambda name: run_tests(solutions[name], problem["tests"], limits),
                             names))
    passed = [[r.passed for r in results] for results in runs]
    rates = pass_rates(passed)
    return {"solutions": names, "passed": passed, "pass_rates": rates,
            "levels": difficulty_levels(rates),
            "statuses": [[r.status for r in results] for results in runs]}
