"""Reading a completion: the final answer region, the boxed math answer, the Python program.

A completion follows the kit's chat format: `<think>...</think>` then the answer, `\\boxed{...}`
for math and one fenced Python block for code. Only what follows the last `</think>` counts, so
numbers or code written while thinking earn nothing (a completion with no `</think>` is read whole).

Math answers are checked with the Math-Verify package, as in MiMo (report §3.2): it extracts the
boxed answer, parses it to sympy and compares it with the reference, so 0.5, 1/2 and
\\frac{1}{2} are one answer. Parsing and comparing run under a time limit (SIGALRM), which works
only in a process's main thread: the kit scores completions in the main thread of a process pool.
"""

from __future__ import annotations

import re
import threading

from math_verify import LatexExtractionConfig, parse, verify

THINK_END = "</think>"
CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
# The answer must be boxed (or follow "final answer is"): a bare number anywhere does not count.
ANSWER_ONLY = [LatexExtractionConfig(try_extract_without_anchor=False, boxed_match_priority=0)]


def final_answer_region(completion: str) -> str:
    """The text after the last `</think>` (the whole text if the model never closed it)."""
    return completion.rsplit(THINK_END, 1)[-1]


def extract_program(completion: str) -> str | None:
    """The Python code of the answer's fenced block (the last one), or None if it has none."""
    blocks = CODE_BLOCK.findall(final_answer_region(completion))
    return blocks[-1] if blocks else None


def math_answer_is_correct(completion: str, answer: str, timeout_s: int = 5) -> bool | None:
    """True/False when Math-Verify can judge; None when the reference answer itself cannot be parsed.

    `answer` is the problem's reference ("5/6", "\\frac{5}{6}", "x^2 + 1", ...). Each of the two
    parses and the comparison get `timeout_s` seconds (Math-Verify's own limit).
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("math_answer_is_correct enforces its time limit with SIGALRM, which works "
                           "only in a process's main thread: call it from the main thread of a "
                           "process (for example a worker of a process pool).")
    gold = parse(f"${answer}$", fallback_mode="no_fallback", parsing_timeout=timeout_s)
    if not gold:
        return None
    predicted = parse(final_answer_region(completion), extraction_config=ANSWER_ONLY,
                      parsing_timeout=timeout_s)
    return bool(predicted) and verify(gold, predicted, timeout_seconds=timeout_s)
