"""SFT data: long chain-of-thought replies for the math and code problem families, and their cleaning.

MiMo-7B-SFT learns from distilled reasoning traces (report §3.1, facts file §4.1), processed in
three steps: (1) drop every query with a 16-gram overlap with the evaluation problems; (2) drop
incomplete responses; (3) keep at most 8 responses per query. The kit has no teacher model to
distil from, so its "teacher" is the programmatic solver of each template: it writes several
distinct step-by-step traces per query (column addition, splitting into tens and ones, a
check line, ...) and, like a real teacher with a token budget, sometimes stops mid-thought. The
cleaning steps then have real work to do, and the report says what each one removed.

A record is one conversation, ready for the chat template:

    {"query_id", "domain", "tier", "messages": [{"role": "user", "content": prompt},
     {"role": "assistant", "reasoning_content": steps, "content": "The answer is \\\\boxed{85}."}]}

The "light" variant (report §3.6, MiMo-7B-RL-LiteSFT) answers in the right format with no
reasoning at all: an empty `<think>` block, then the boxed answer or the program.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from fractions import Fraction

from ..tasks.decontamination import ngram_overlap
from ..tasks.problems import code_problems, math_problems
from .worked_math import column_addition, latex

OPENERS = ["", "Let me work this out step by step.", "I need to compute this carefully.",
           "Step by step.", "Let me think."]
CLOSERS = ["The answer is \\boxed{{{x}}}.", "So the answer is \\boxed{{{x}}}.",
           "Final answer: \\boxed{{{x}}}.", "\\boxed{{{x}}}"]


def boxed_answer(answer: str) -> str:
    """The answer as it goes inside \\boxed{}: 341/2 becomes \\frac{341}{2}, 7 stays 7."""
    try:
        return latex(Fraction(answer))
    except (ValueError, ZeroDivisionError):
        return answer


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", text)]


# ---- the solver's traces: several distinct ways to reach the same answer --------------------

def _subtraction_split(a: int, b: int) -> list[str]:
    tens, ones = b - b % 10, b % 10
    if not (tens and ones):
        return [f"{a} - {b} = {a - b}."]
    return [f"Split {b} into {tens} + {ones}.", f"{a} - {tens} = {a - tens}.",
            f"{a - tens} - {ones} = {a - b}.", f"So {a} - {b} = {a - b}."]


def _column_subtraction(a: int, b: int) -> list[str]:
    """Digit by digit from the ones place, borrowing a ten when the top digit is smaller."""
    da, db = str(a)[::-1], str(b)[::-1]
    steps, borrow = [], 0
    for i in range(len(da)):
        x, y = int(da[i]) - borrow, int(db[i]) if i < len(db) else 0
        place = ["Ones", "Tens", "Hundreds"][min(i, 2)]
        if x < y:
            steps.append(f"{place}: {x} is less than {y}, borrow: {x + 10} - {y} = {x + 10 - y}.")
            borrow = 1
        else:
            steps.append(f"{place}: {x} - {y} = {x - y}.")
            borrow = 0
    return steps + [f"So {a} - {b} = {a - b}."]


def _multiply_split(a: int, b: int) -> list[str]:
    small, big = (a, b) if a < b else (b, a)
    tens, ones = big - big % 10, big % 10
    if big < 10 or not ones:
        return [f"{a} * {b} = {a * b}."]
    return [f"Split {big} into {tens} + {ones}.", f"{small} * {tens} = {small * tens}.",
            f"{small} * {ones} = {small * ones}.", f"{small * tens} + {small * ones} = {a * b}."]


def math_traces(problem: dict) -> list[list[str]]:
    """Distinct step lists for one math problem: the template's own solution told several ways, or,
    for multi-digit arithmetic, only the digit-by-digit traces."""
    template, answer = problem["template"], Fraction(problem["answer"])
    own = [s.strip()[0].upper() + s.strip()[1:] + "."
           for s in re.split(r", (?=and |so )|; ", problem["solution"]) if s.strip()]
    traces = [own]
    numbers = _numbers(problem["prompt"])
    if template in ("add", "add_two_digit"):
        a, b = numbers[:2]
        traces += [column_addition(a, b), column_addition(a, b) + [f"Check: {a + b} - {b} = {a}."]]
        if b >= 10 and b % 10:
            traces.append([f"{a} + {b - b % 10} = {a + b - b % 10}.",
                           f"{a + b - b % 10} + {b % 10} = {a + b}."])
    elif template in ("subtract", "subtract_two_digit"):
        a, b = numbers[:2]
        traces += [_subtraction_split(a, b), _column_subtraction(a, b),
                   _subtraction_split(a, b) + [f"Check: {a - b} + {b} = {a}."]]
    elif template in ("multiply", "multiply_one_by_two_digit"):
        a, b = numbers[:2]
        traces += [_multiply_split(a, b), _multiply_split(a, b) + [f"Check: {a * b} / {b} = {a}."]]
    elif template == "two_steps":
        a, b, c = numbers[:3]
        traces += [[f"First the brackets: {a} + {b} = {a + b}."] + _multiply_split(a + b, c),
                   [f"{a} + {b} = {a + b}.", f"{a + b} * {c} = {(a + b) * c}."]]
    else:                          # tiers 3–4: the template's worked solution, told two more ways
        traces += [[f"We need: {problem['prompt']}"] + own,
                   own + [f"So the result is {problem['answer']}."]]
    if template in ("add_two_digit", "subtract_two_digit", "multiply_one_by_two_digit", "two_steps"):
        traces = traces[1:]        # a one-line answer to multi-digit arithmetic teaches a small model
        #                            nothing (it cannot do it in one token): only stepwise traces
    unique = []
    for trace in traces:
        if trace not in unique:
            unique.append(trace)
    return unique


def code_traces(problem: dict) -> list[list[str]]:
    name = re.search(r"`(\w+)\(", problem["prompt"])
    what = f"the function `{name.group(1)}`" if name else "a program that reads stdin"
    return [[f"I need {what}.", "I will handle the edge cases first, then the main loop."],
            [f"The task asks for {what}.", "A single pass over the input is fast enough."],
            [f"Write {what}.", "Check the empty input and the large input sizes."]]


def responses(problem: dict, rng: random.Random, count: int, incomplete_rate: float) -> list[dict]:
    """`count` teacher replies to one query (some repeated, some cut off mid-thought)."""
    if problem["domain"] == "math":
        traces, final = math_traces(problem), boxed_answer(problem["answer"])
        contents = [c.format(x=final) for c in CLOSERS]
    else:
        traces = code_traces(problem)
        contents = [f"```python\n{problem['solution'].rstrip()}\n```"]
    replies = []
    for _ in range(count):
        steps = [s for s in [rng.choice(OPENERS)] + rng.choice(traces) if s]
        reasoning, content = "\n".join(steps), rng.choice(contents)
        if rng.random() < incomplete_rate:          # the teacher ran out of tokens mid-thought
            reasoning, content = reasoning[:rng.randrange(1, len(reasoning))], ""
        replies.append({"role": "assistant", "reasoning_content": reasoning, "content": content})
    return replies


def light_response(problem: dict) -> dict:
    """Format only (LiteSFT): an empty thought, then the final answer or the program."""
    if problem["domain"] == "math":
        content = CLOSERS[0].format(x=boxed_answer(problem["answer"]))
    else:
        content = f"```python\n{problem['solution'].rstrip()}\n```"
    return {"role": "assistant", "reasoning_content": "", "content": content}


# ---- the raw pool and the paper's three cleaning steps ----------------------------------------

def raw_sft_pool(math_per_tier: list[int], code_families: int, code_variants: int,
                 max_candidates: int, incomplete_rate: float, seed: int = 0) -> list[dict]:
    """Teacher replies for freshly drawn queries: 1..max_candidates replies each, before cleaning.

    `math_per_tier[t - 1]` queries of tier t (fewer where a tier has fewer distinct problems).
    """
    rng = random.Random(f"{seed}-sft")
    drawn, queries = math_problems(max(math_per_tier), seed=seed + 1000), []
    for tier, n in enumerate(math_per_tier, 1):
        queries += [p for p in drawn if p["tier"] == tier][:n]
    queries += code_problems(code_families, code_variants, typical_tests=1, seed=seed)
    records = []
    for problem in queries:
        for reply in responses(problem, rng, rng.randint(1, max_candidates), incomplete_rate):
            records.append({"query_id": problem["id"], "domain": problem["domain"],
                            "tier": problem.get("tier"), "prompt": problem["prompt"],
                            "answer": problem.get("answer"), "solution": problem.get("solution"),
                            "messages": [{"role": "user", "content": problem["prompt"]}, reply]})
    return records


def is_complete(record: dict) -> bool:
    """A finished reply: math ends in a \\boxed{} answer, code in a fenced Python block."""
    content = record["messages"][-1]["content"]
    if record["domain"] == "math":
        return "\\boxed{" in content
    return "```python" in content and content.rstrip().endswith("```")


def clean_sft(records: list[dict], eval_prompts: list[str], n: int = 16,
              max_per_query: int = 8, seed: int = 0) -> tuple[list[dict], dict]:
    """The report's three steps, in order; returns the kept records and what each step removed."""
    prompts = sorted({r["prompt"] for r in records})
    overlap = dict(zip(prompts, ngram_overlap(prompts, eval_prompts, n)))
    contaminated = {p for p in prompts if overlap[p] > 0}
    step1 = [r for r in records if r["prompt"] not in contaminated]
    step2 = [r for r in step1 if is_complete(r)]
    rng, by_query = random.Random(f"{seed}-cap"), {}
    for record in step2:
        by_query.setdefault(record["query_id"], []).append(record)
    kept = []
    for group in by_query.values():
        kept += rng.sample(group, max_per_query) if len(group) > max_per_query else group
    report = {
        "raw": {"queries": len(prompts), "responses": len(records)},
        "decontamination": {"n": n, "queries_removed": len(contaminated),
                            "responses_removed": len(records) - len(step1)},
        "incomplete": {"responses_removed": len(step1) - len(step2)},
        "per_query_cap": {"cap": max_per_query, "responses_removed": len(step2) - len(kept)},
        "kept": {"queries": len(by_query), "responses": len(kept),
                 "by_domain": dict(Counter(r["domain"] for r in kept))},
    }
    return kept, report


def light_sft(records: list[dict]) -> list[dict]:
    """One format-only reply per query of the cleaned set."""
    seen, light = set(), []
    for record in records:
        if record["query_id"] in seen:
            continue
        seen.add(record["query_id"])
        light.append({**record, "messages": [record["messages"][0], light_response(record)]})
    return light
