import threading

import pytest

from mimo_lite.tasks.verify import extract_program, final_answer_region, math_answer_is_correct


@pytest.mark.parametrize("answer, completion", [
    ("1/2", "\\boxed{0.5}"),
    ("1/2", "\\boxed{\\dfrac{1}{2}}"),
    ("\\frac{1}{2}", "\\boxed{1/2}"),
    ("5", "so \\boxed{x = 5}"),
    ("2\\sqrt{2}", "\\boxed{\\sqrt{8}}"),
    ("1000", "\\boxed{1,000}"),
    ("3/4", "\\boxed{75\\%}"),
    ("-3/4", "\\boxed{-0.75}"),
    ("12", "\\boxed{12.0}"),
    ("\\pi/2", "\\boxed{\\frac{\\pi}{2}}"),
    ("x^2+2x+1", "\\boxed{(x+1)^2}"),
    ("2, 3", "\\boxed{3, 2}"),
    ("70/3", "The average is \\boxed{\\frac{70}{3}}."),
])
def test_equivalent_forms_are_accepted(answer, completion):
    assert math_answer_is_correct(completion, answer) is True


@pytest.mark.parametrize("answer, completion", [
    ("1/2", "\\boxed{0.49}"),
    ("5", "\\boxed{-5}"),
    ("8", "the answer is 8"),                      # not boxed
    ("8", "\\boxed{8} or maybe \\boxed{9}"),       # hedging: two different boxed answers
    ("12", "\\boxed{twelve}"),
    ("8", "<think>\\boxed{8}</think> \\boxed{9}"),  # only the answer after thinking counts
    ("8", ""),
])
def test_wrong_or_missing_answers_are_rejected(answer, completion):
    assert math_answer_is_correct(completion, answer) is False


def test_an_unparseable_reference_cannot_be_judged():
    assert math_answer_is_correct("\\boxed{1}", "\\frac{") is None


def test_the_time_limit_needs_the_main_thread():
    errors = []
    thread = threading.Thread(target=lambda: errors.append(_capture(
        lambda: math_answer_is_correct("\\boxed{1}", "1"))))
    thread.start()
    thread.join()
    assert isinstance(errors[0], RuntimeError) and "main thread" in str(errors[0])


def _capture(call):
    try:
        call()
    except Exception as err:      # noqa: BLE001 - the test inspects it
        return err


def test_reading_a_completion():
    completion = "<think>try ```python\nprint(1)\n```</think>Here:\n```python\nprint(2)\n```\n" \
                 "and finally\n```py\nprint(3)\n```"
    assert final_answer_region(completion).startswith("Here:")
    assert extract_program(completion) == "print(3)\n"
    assert extract_program("<think>```python\nprint(1)\n```</think> no code") is None
    assert final_answer_region("no think tags") == "no think tags"
