"""Synthetic reasoning data: long step-by-step `<think>` solutions to math and code problems.

MiMo adds synthetic responses of reasoning models to math, code and creative-writing queries in
stage 3 (about 10% of the mixture, report §2.1). The kit has no reasoning model to distil from,
so programmatic solvers write the traces: they restate the task, plan, work step by step, check
the result, and answer — math with `\\boxed{}`, code with one fenced Python block. Every code
solution is executed on its example while the trace is written, so the trace quotes what the
code really returns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..chat import render_chat
from .documents import document
from .worked_math import pick, worked_problem

OPENINGS = ["Let me solve this step by step.", "I will work through this carefully.",
            "Let's think step by step.", "First, what is being asked?"]


def math_trace(rng: random.Random) -> str:
    """A chat turn: the problem, a verbose <think> with a check, then the boxed answer."""
    w = worked_problem(rng)
    lines = [pick(rng, OPENINGS), f"The question: {w.question}", *w.steps]
    if w.check:
        lines.append(f"Let me check: {w.check}. That is consistent.")
    lines.append(f"So the answer is {w.answer}.")
    return render_chat([
        {"role": "user", "content": w.question},
        {"role": "assistant", "reasoning_content": "\n".join(lines),
         "content": f"The answer is \\boxed{{{w.answer}}}."}])


@dataclass
class CodeTask:
    """A small programming problem with a reference solution and one example call."""
    prompt: str
    plan: list[str]
    code: str
    call: str               # an expression calling the solution, e.g. "sum_even([1, 2, 4])"

    def run_example(self):
        """Execute the solution and the example call (the kit's own code, never model output)."""
        namespace: dict = {}
        exec(self.code, namespace)
        return eval(self.call, namespace)


def _nums(rng: random.Random, n: int | None = None) -> list[int]:
    return [rng.randrange(-9, 30) for _ in range(n or rng.randrange(3, 7))]


def _word(rng: random.Random) -> str:
    return pick(rng, ["level", "python", "banana", "racecar", "notebook", "madam", "tokenizer",
                       "kayak", "reasoning", "stats", "hello world", "noon"])


def code_task(rng: random.Random) -> CodeTask:
    kind = rng.randrange(10)
    if kind == 0:
        k = rng.randrange(2, 6)
        fn = pick(rng, ["sum_multiples", "total_of_multiples", "sum_divisible"])
        return CodeTask(
            f"Write a Python function `{fn}(nums)` that returns the sum of the numbers in "
            f"`nums` that are divisible by {k}.",
            ["Keep a running total starting at 0.",
             f"For each number, add it when the remainder of division by {k} is 0."],
            f"def {fn}(nums):\n    total = 0\n    for x in nums:\n        if x % {k} == 0:\n"
            f"            total += x\n    return total", f"{fn}({_nums(rng)})")
    if kind == 1:
        fn = pick(rng, ["count_vowels", "vowel_count", "num_vowels"])
        return CodeTask(
            f"Write a function `{fn}(s)` that counts the vowels (a, e, i, o, u) in the string "
            f"`s`, ignoring case.",
            ["Lower-case the string so that 'A' and 'a' count alike.",
             "Count the characters that belong to the set of vowels."],
            f"def {fn}(s):\n    return sum(1 for ch in s.lower() if ch in 'aeiou')",
            f"{fn}({_word(rng)!r})")
    if kind == 2:
        fn = pick(rng, ["factorial", "fact", "product_up_to"])
        return CodeTask(
            f"Implement `{fn}(n)`, which returns n! = 1 × 2 × ... × n for n ≥ 0 (0! = 1).",
            ["Start from 1, the empty product, so that 0! = 1.",
             "Multiply by every integer from 2 to n."],
            f"def {fn}(n):\n    result = 1\n    for i in range(2, n + 1):\n        result *= i\n"
            f"    return result", f"{fn}({rng.randrange(0, 9)})")
    if kind == 3:
        fn = pick(rng, ["fibonacci", "fib", "nth_fibonacci"])
        return CodeTask(
            f"Write `{fn}(n)` returning the n-th Fibonacci number, with {fn}(0) = 0 and "
            f"{fn}(1) = 1.",
            ["Keep the last two numbers a and b, starting at 0 and 1.",
             "Step n times: (a, b) becomes (b, a + b); then a is the answer."],
            f"def {fn}(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
            f"    return a", f"{fn}({rng.randrange(0, 15)})")
    if kind == 4:
        fn = pick(rng, ["is_prime", "prime", "check_prime"])
        return CodeTask(
            f"Write a function `{fn}(n)` that returns True if the integer n is prime and False "
            f"otherwise.",
            ["Numbers below 2 are not prime.",
             "Try divisors d from 2 while d × d ≤ n; any divisor means n is not prime."],
            f"def {fn}(n):\n    if n < 2:\n        return False\n    d = 2\n    while d * d <= n:\n"
            f"        if n % d == 0:\n            return False\n        d += 1\n    return True",
            f"{fn}({rng.randrange(0, 60)})")
    if kind == 5:
        fn = pick(rng, ["largest", "find_max", "maximum"])
        return CodeTask(
            f"Without using the built-in max, write `{fn}(nums)` that returns the largest "
            f"number in a non-empty list.",
            ["Take the first element as the best so far.",
             "Walk through the rest and replace the best whenever a larger number appears."],
            f"def {fn}(nums):\n    best = nums[0]\n    for x in nums[1:]:\n        if x > best:\n"
            f"            best = x\n    return best", f"{fn}({_nums(rng)})")
    if kind == 6:
        fn = pick(rng, ["is_palindrome", "palindrome", "reads_same_backwards"])
        return CodeTask(
            f"Write `{fn}(s)` that returns True when the string s reads the same forwards and "
            f"backwards, ignoring spaces.",
            ["Remove the spaces.", "Compare the string with its reverse, s[::-1]."],
            f"def {fn}(s):\n    s = s.replace(' ', '')\n    return s == s[::-1]",
            f"{fn}({_word(rng)!r})")
    if kind == 7:
        fn = pick(rng, ["digit_sum", "sum_of_digits", "add_digits"])
        return CodeTask(
            f"Write `{fn}(n)` that returns the sum of the decimal digits of a non-negative "
            f"integer n.",
            ["Take the last digit with n % 10 and add it.", "Drop it with n // 10 until n is 0."],
            f"def {fn}(n):\n    total = 0\n    while n > 0:\n        total += n % 10\n"
            f"        n //= 10\n    return total", f"{fn}({rng.randrange(0, 100000)})")
    if kind == 8:
        fn = pick(rng, ["gcd", "greatest_common_divisor", "euclid"])
        return CodeTask(
            f"Implement `{fn}(a, b)` returning the greatest common divisor of two positive "
            f"integers using Euclid's algorithm.",
            ["Euclid: gcd(a, b) = gcd(b, a mod b).", "Repeat until b is 0; then a is the gcd."],
            f"def {fn}(a, b):\n    while b:\n        a, b = b, a % b\n    return a",
            f"{fn}({rng.randrange(1, 100)}, {rng.randrange(1, 100)})")
    t = rng.randrange(0, 15)
    fn = pick(rng, ["count_above", "count_greater", "how_many_above"])
    return CodeTask(
        f"Write `{fn}(nums)` that returns how many numbers in the list are greater than {t}.",
        [f"Count one for each element x with x > {t}."],
        f"def {fn}(nums):\n    return sum(1 for x in nums if x > {t})", f"{fn}({_nums(rng)})")


def code_trace(rng: random.Random) -> str:
    """A chat turn: the task, a <think> plan with a worked example, then one fenced code block."""
    task = code_task(rng)
    lines = [pick(rng, OPENINGS), *task.plan,
             f"Let me test the idea on an example: {task.call} should return "
             f"{task.run_example()!r}.", "The plan works, so I will write the code."]
    answer = pick(rng, ["", "Here is the solution.\n\n", "This function does it:\n\n"])
    return render_chat([
        {"role": "user", "content": task.prompt},
        {"role": "assistant", "reasoning_content": "\n".join(lines),
         "content": f"{answer}```python\n{task.code}\n```"}])


def reasoning_documents(n: int, rng: random.Random) -> list[dict]:
    """`n` synthetic-reasoning documents: about 70% math traces, 30% code traces."""
    return [document(math_trace(rng), "reasoning_math", "synthetic_reasoning")
            if rng.random() < 0.7 else
            document(code_trace(rng), "reasoning_code", "synthetic_reasoning")
            for _ in range(n)]
