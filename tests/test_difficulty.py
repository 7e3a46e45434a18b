import pytest

from mimo_lite.tasks.difficulty import difficulty_levels, grade_problem, pass_rates


def test_pass_rates_are_per_test_means_over_solutions():
    passed = [[True, True, True], [True, False, True], [True, False, False], [False, False, True]]
    assert pass_rates(passed) == [0.75, 0.25, 0.75]
    with pytest.raises(ValueError, match="at least one"):
        pass_rates([])


def test_levels_cluster_high_rates_as_easy_and_low_as_hard():
    rates = [1.0, 0.95, 1.0, 0.5, 0.55, 0.1, 0.0]
    assert difficulty_levels(rates) == ["Easy", "Easy", "Easy", "Medium", "Medium", "Hard", "Hard"]


def test_clustering_follows_the_gaps_not_fixed_thresholds():
    # the largest gap is between 0.9 and 0.4, the next between 0.35 and 0.3
    rates = [1.0, 0.9, 0.4, 0.35, 0.3, 0.3]
    assert difficulty_levels(rates) == ["Easy", "Easy", "Medium", "Medium", "Hard", "Hard"]


def test_fewer_distinct_rates_than_levels():
    assert difficulty_levels([1.0, 1.0]) == ["Easy", "Easy"]
    assert difficulty_levels([1.0, 0.2, 1.0]) == ["Easy", "Hard", "Easy"]


def test_grading_a_problem_runs_every_solution_in_the_sandbox():
    problem = {"tests": [{"code": "assert f(1) == 1"}, {"code": "assert f(-1) == 1"},
                         {"code": "assert f(0) == 0"}]}
    solutions = {"reference": "def f(x):\n    return abs(x)\n",
                 "identity": "def f(x):\n    return x\n",
                 "crashes_on_zero": "def f(x):\n    return abs(x) // (x // x)\n"}
    grade = grade_problem(problem, solutions)
    assert grade["solutions"] == list(solutions)
    assert grade["passed"] == [[True, True, True], [True, False, True], [True, True, False]]
    assert grade["statuses"][2] == ["passed", "passed", "runtime_error"]
    assert grade["pass_rates"] == [1.0, pytest.approx(2 / 3), pytest.approx(2 / 3)]
    assert grade["levels"] == ["Easy", "Hard", "Hard"]
