import pytest

from mimo_lite.profile import load_profile

pytestmark = pytest.mark.notebook


def test_notebook_07_suites_verifier_sandbox_difficulty_and_rewards(run_notebook, smoke_runs):
    r = run_notebook("07")
    settings = load_profile("smoke").problems

    # suites: every tier at the profile's size, both splits used, 10-30 tests per code problem
    assert r["math_per_tier"] == {str(t): settings.math_per_tier for t in (1, 2, 3, 4)}
    sizes = r["suite_sizes"]
    assert sum(s.get("code", 0) for s in sizes.values()) == settings.code_families * sum(settings.code_variants)
    assert sizes["heldout"]["math"] > 0 and sizes["train"]["math"] > sizes["heldout"]["math"]
    assert set(r["code_per_tier"]) == {"1", "2"}
    low, high = r["tests_per_code_problem"]
    assert 10 <= low <= high <= 30
    assert r["decontamination"]["train split, held-out math only"] == 0
    assert r["decontamination"]["pretraining corpus (notebook 01)"] == 0   # notebook 01 removed the overlap
    assert r["corpus_documents_removed"] >= 0

    # verifier and sandbox
    assert r["verifier_agrees"] == r["verifier_cases"] >= 10
    assert {"landlock-files", "unprivileged-uid"} & set(r["sandbox_layers"])
    demo = r["sandbox_demo"]
    assert set(demo["golden solution"]) == {"passed"}
    weaker = next(v for k, v in demo.items() if k.startswith("weaker"))
    assert set(weaker) - {"passed"}
    assert r["attack_tests_passed"] == 0
    assert demo["attack: eats memory"] == {"memory_limit": 4}
    assert demo["attack: loops forever"] == {"timeout": 4}
    assert r["sandbox_tests_per_s"] > 0

    # test difficulty: graded into levels spanning easy to hard
    levels = r["test_levels"]
    assert levels["Easy"] > 0 and levels["Hard"] > 0
    assert len(r["shown_problem_levels"]) == 3

    # rewards on partial solutions: vanilla gives nothing, soft the densest signal
    assert r["partial_solutions"] > 0 and r["rewards_ordered"]
    mean, nonzero = r["reward_mean"], r["reward_nonzero"]
    assert mean["vanilla"] == 0.0 and nonzero["vanilla"] == 0.0
    assert mean["soft"] > mean["strict"] >= 0.0 and nonzero["soft"] >= nonzero["strict"]

    figures = smoke_runs / "smoke" / "notebooks" / "figures" / "07_rewards"
    assert {f.stem for f in figures.glob("*.png")} == {"test_difficulty", "pass_rate_histogram",
                                                        "reward_schemes"}
