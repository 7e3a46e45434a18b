import pytest

from mimo_lite.tasks import rewards
from mimo_lite.tasks.rewards import code_reward, math_reward, score, vanilla_code_reward


E, M, H = "Easy", "Medium", "Hard"
T, F = True, False
LEVELS = [E, E, M, M, H]      # two Easy, two Medium, one Hard; shares 1/3 each


@pytest.mark.parametrize("passed, vanilla, strict, soft", [
    # strict: Easy all pass (1/3), a Medium fails -> stop.  soft: 2/2·1/3 + 1/2·1/3 + 1·1/3
    ([T, T, T, F, T], 0.0, 1 / 3, 1 / 3 + 1 / 6 + 1 / 3),
    # an Easy test fails: strict gives nothing, even though Medium and Hard all pass
    ([T, F, T, T, T], 0.0, 0.0, 1 / 6 + 1 / 3 + 1 / 3),
    # Easy and Medium pass, Hard fails
    ([T, T, T, T, F], 0.0, 2 / 3, 2 / 3),
    ([T, T, T, T, T], 1.0, 1.0, 1.0),
    ([F, F, F, F, F], 0.0, 0.0, 0.0),
    # only the Hard test passes: strict 0, soft 1/3
    ([F, F, F, F, T], 0.0, 0.0, 1 / 3),
])
def test_hand_computed_rewards(passed, vanilla, strict, soft):
    assert vanilla_code_reward(passed) == vanilla
    assert rewards.test_difficulty_reward(LEVELS, passed, "vanilla") == vanilla
    assert rewards.test_difficulty_reward(LEVELS, passed, "strict") == pytest.approx(strict)
    assert rewards.test_difficulty_reward(LEVELS, passed, "soft") == pytest.approx(soft)


def test_missing_levels_share_the_score_and_order_is_by_level_not_position():
    levels = [H, E, E]                                  # no Medium: Easy and Hard get 1/2 each
    assert rewards.test_difficulty_reward(levels, [F, T, T], "strict") == pytest.approx(0.5)
    assert rewards.test_difficulty_reward(levels, [T, T, F], "strict") == 0.0
    assert rewards.test_difficulty_reward(levels, [T, T, F], "soft") == pytest.approx(0.5 + 0.25)


def test_custom_level_scores():
    scores = {E: 0.2, M: 0.3, H: 0.5}
    assert rewards.test_difficulty_reward([E, M, H], [T, T, F], "strict", scores) == pytest.approx(0.5)
    assert rewards.test_difficulty_reward([E, M, H], [T, F, T], "soft", scores) == pytest.approx(0.7)
    assert rewards.test_difficulty_reward([E, M, H], [T, F, T], "strict", scores) == pytest.approx(0.2)


def test_bad_reward_inputs_are_refused():
    with pytest.raises(ValueError, match="one level per test"):
        rewards.test_difficulty_reward([E, M], [T])
    with pytest.raises(ValueError, match="unknown reward scheme"):
        rewards.test_difficulty_reward([E], [T], "partial")
    with pytest.raises(ValueError, match="unknown test levels"):
        rewards.test_difficulty_reward(["Trivial"], [T])
    assert vanilla_code_reward([]) == 0.0


def test_math_reward_reads_the_boxed_answer_after_thinking():
    assert math_reward("<think>3+5=8</think> The answer is \\boxed{8}.", "8") == 1.0
    assert math_reward("<think>\\boxed{8}</think> \\boxed{9}", "8") == 0.0
    assert math_reward("<think>no answer</think> eight", "8") == 0.0


CODE_PROBLEM = {"id": "double", "domain": "code", "prompt": "Write double(x).",
                "tests": [{"code": "assert double(1) == 2", "level": E},
                          {"code": "assert double(-1) == -2", "level": M},
                          {"code": "assert double(10 ** 6) == 2000000", "level": H}]}


def test_code_reward_runs_the_fenced_block_of_the_answer():
    right = "<think>x+x</think>\n```python\ndef double(x):\n    return x + x\n```"
    positives = "<think>hmm</think>\n```python\ndef double(x):\n    return abs(x) * 2\n```"
    assert score(CODE_PROBLEM, right) == 1.0
    assert score(CODE_PROBLEM, positives, "strict") == pytest.approx(1 / 3)
    assert score(CODE_PROBLEM, positives, "soft") == pytest.approx(2 / 3)
    assert score(CODE_PROBLEM, positives, "vanilla") == 0.0
    assert score(CODE_PROBLEM, "def double(x): return 2 * x") == 0.0     # no fenced block
    thinking_only = "<think>```python\ndef double(x):\n    return 2 * x\n```</think> done"
    assert code_reward(thinking_only, CODE_PROBLEM["tests"]) == 0.0


def test_ungraded_code_tests_fall_back_to_the_vanilla_reward():
    tests = [{"code": "assert double(1) == 2"}, {"code": "assert double(-1) == -2"}]
    positives = "```python\ndef double(x):\n    return abs(x) * 2\n```"
    assert code_reward(positives, tests, "soft") == 0.0


def test_score_dispatches_on_the_domain():
    problem = {"id": "m", "domain": "math", "prompt": "What is 1/2 + 1/3?", "answer": "5/6"}
    assert score(problem, "\\boxed{\\frac{5}{6}}") == 1.0
    with pytest.raises(ValueError, match="domain"):
        score({"id": "x", "domain": "chess"}, "")
