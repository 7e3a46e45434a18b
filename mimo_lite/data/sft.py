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
from math import gcd
from string import Template

from ..tasks.decontamination import ngram_overlap
from ..tasks.problems import _call, _run_stdio, code_families, code_problems, math_problems
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


def math_traces(problem: dict, rng: random.Random | None = None) -> list[list[str]]:
    """Distinct step lists for one math problem, each a long chain of thought: a plan, the steps,
    a check by another route; tiers 3–4 work every step out (Euclid's steps, powers one by one).
    With `rng`, a multi-step problem (tiers 3–4) gets one more trace that slips on an arithmetic
    step, notices and redoes it. Tiers 1–2 get none: their traces hold one or two sums, and a slip
    among them teaches a small model wrong facts (at toy, math fell to 0.0–0.2 with them)."""
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
    else:                          # tiers 3–4: worked out in full, then told two shorter ways
        worked = _worked_out(template, numbers, answer)
        traces = [worked, [f"We need: {problem['prompt']}"] + own + worked[-2:],
                  own + [f"So the result is {problem['answer']}."]]
    if template in ("add_two_digit", "subtract_two_digit", "multiply_one_by_two_digit", "two_steps"):
        traces = traces[1:]        # a one-line answer to multi-digit arithmetic teaches a small model
        #                            nothing (it cannot do it in one token): only stepwise traces
    plan, check = _plan(template), _check(template, numbers, answer)
    traces = [[plan] + t + ([check] if check and not any(x.startswith("Check") for x in t) else [])
              for t in traces]
    if rng is not None and problem["tier"] >= 3:
        slipped = _slip(rng.choice(traces), rng)
        if slipped:
            traces.append(slipped)
    unique = []
    for trace in traces:
        if trace not in unique:
            unique.append(trace)
    return unique


PLANS = {
    "add": "Plan: add the two numbers.", "subtract": "Plan: take the second number from the first.",
    "multiply": "Plan: multiply the two numbers.",
    "add_two_digit": "Plan: add column by column from the ones, carrying a ten when a column reaches 10.",
    "subtract_two_digit": "Plan: subtract, splitting the second number into tens and ones.",
    "multiply_one_by_two_digit": "Plan: split the two-digit number into tens and ones, multiply each, add.",
    "two_steps": "Plan: the brackets first, then the multiplication.",
    "linear_equation": "Plan: move the constant to the right side, divide by the coefficient, substitute back.",
    "add_fractions": "Plan: bring both fractions to a common denominator, add, reduce, check with decimals.",
    "percent": "Plan: find 1% or 10% of the number first, then scale up.",
    "average": "Plan: add the three numbers, divide by 3, check by multiplying back.",
    "sum_to_n": "Plan: pair the smallest with the largest; every pair has the same sum.",
    "gcd": "Plan: Euclid's algorithm, replacing the pair by (smaller, remainder) until the remainder is 0.",
    "choose": "Plan: C(n, k) = n * (n-1) * ... (k factors) / k!, computed one factor at a time.",
    "power_mod": "Plan: multiply by the base one power at a time, keeping only the remainder each time.",
    "divisor_count": "Plan: factor the number into primes; the count is the product of (exponent + 1).",
    "larger_root": "Plan: find two numbers with the right sum and product, factor, and check.",
}


def _plan(template: str) -> str:
    return PLANS.get(template, "Plan: work it out step by step, then check.")


def _check(template: str, numbers: list[int], answer: Fraction) -> str | None:
    """A check by another route: the inverse operation, or substituting the answer back."""
    n = numbers
    if template in ("add", "add_two_digit"):
        return f"Check: {n[0] + n[1]} - {n[1]} = {n[0]}. Correct."
    if template in ("subtract", "subtract_two_digit"):
        return f"Check: {n[0] - n[1]} + {n[1]} = {n[0]}. Correct."
    if template in ("multiply", "multiply_one_by_two_digit") and n[1]:
        return f"Check: {n[0] * n[1]} / {n[1]} = {n[0]}. Correct."
    if template == "two_steps":
        return f"Check: {n[0]} * {n[2]} + {n[1]} * {n[2]} = {n[0] * n[2]} + {n[1] * n[2]} = {(n[0] + n[1]) * n[2]}. Correct."
    if template == "linear_equation":
        a, b = n[0], n[1]
        return f"Check: {a} * {latex(answer)} + {b} = {a * answer + b}. Correct."
    if template == "average":
        return f"Check: 3 * {latex(answer)} = {3 * answer} = {n[0]} + {n[1]} + {n[2]}. Correct."
    return None


def _product(a: int, b: int) -> list[str]:
    """A product a small model can follow, ending in the line "a * b = ab.": when both factors
    have several digits, the split into tens and ones of the larger comes first (tiers 3–4)."""
    split = _multiply_split(a, b)[:-1] if min(a, b) >= 10 else []
    return split + [f"{a} * {b} = {a * b}."]


def _euclid(a: int, b: int) -> list[str]:
    a, b = max(a, b), min(a, b)
    steps = []
    while b:
        steps.append(f"{a} = {a // b} * {b} + {a % b}, so the pair becomes ({b}, {a % b}).")
        a, b = b, a % b
    return steps


def _worked_out(template: str, n: list[int], answer: Fraction) -> list[str]:
    """Tiers 3–4 worked out as a careful solver writes them: every multi-digit product split,
    then a check by a second route (substituting back, another method, a small case, listing):
    a few hundred tokens for the multi-step templates of tier 4."""
    if template == "gcd":
        g = int(answer)
        x, y = n[0] // g, n[1] // g
        if g == 1:
            return _euclid(n[0], n[1]) + [
                "The remainder is 0, so the gcd is 1.",
                f"Check: the last divisor is 1, so every common divisor of {n[0]} and {n[1]} divides 1. "
                f"Correct: {n[0]} and {n[1]} are coprime."]
        return _euclid(n[0], n[1]) + [
            f"The remainder is 0, so the gcd is {g}.",
            f"Check: {n[0]} / {g} = {x} and {n[1]} / {g} = {y}, both whole.",
            *_product(g, x), *_product(g, y),
            f"Dividing every line of Euclid by {g} gives Euclid on ({x}, {y}), which ends at 1: "
            f"{x} and {y} share no factor, so no larger number divides both. Correct: the gcd is {g}."]
    if template == "power_mod":
        a, k, m = n[:3]
        steps, r = [f"{a} mod {m} = {a % m}; each step multiplies by {a}, then -> the remainder."], a % m
        seen = [1, r]                                  # seen[e]: the remainder of a^e
        for e in range(2, k + 1):
            steps.append(f"{a}^{e}: {r} * {a} = {r * a} -> {r * a % m}.")
            r = r * a % m
            if r in seen and e < k:                    # the remainders cycle: jump ahead
                j = seen.index(r)
                period, left = e - j, (k - j) % (e - j)
                steps.append(f"{a}^{e} leaves {r}, as {a}^{j} did, so from there the remainders repeat every "
                             f"{period} powers: {k} - {j} = {(k - j) // period} * {period} + {left}, and "
                             f"{a}^{k} leaves what {a}^{j + left} leaves: {seen[j + left]}.")
                r = seen[j + left]
                break
            seen.append(r)
        steps.append(f"So {a}^{k} mod {m} = {r}.")
        bits = [1 << i for i in range(k.bit_length()) if k >> i & 1]
        check, e, sq = [f"Check by squaring: {k} = " + " + ".join(map(str, bits)) + "."], 1, a % m
        table = {1: sq}                                # table[e]: the remainder of a^e, e a power of 2
        while 2 * e <= k:
            check.append(f"{a}^{2 * e}: {sq} * {sq} = {sq * sq} -> {sq * sq % m}.")
            sq, e = sq * sq % m, 2 * e
            table[e] = sq
        acc = 1
        for p in bits:
            check.append(f"Times {a}^{p} (remainder {table[p]}): {acc} * {table[p]} = {acc * table[p]} -> {acc * table[p] % m}.")
            acc = acc * table[p] % m
        return steps + check + [f"Both ways give {acc}. Correct."]
    if template == "sum_to_n":
        m = n[-1]
        pairs = [f"{i} + {m + 1 - i} = {m + 1}" for i in range(1, min(4, m // 2) + 1)]
        return [f"Pairs: {', '.join(pairs)}, ...", f"Every pair sums to {m + 1}; there are {m} numbers, so {m} / 2 pairs.",
                *_product(m, m + 1), f"{m * (m + 1)} / 2 = {m * (m + 1) // 2}.",
                f"So the sum is {m * (m + 1) // 2}.",
                "Check the rule on a small case: 1 + 2 + 3 + 4 = 10, and 4 * 5 / 2 = 10. Correct.",
                f"Check the size: the average of 1 and {m} is {latex(Fraction(m + 1, 2))}, times {m} numbers is "
                f"{m * (m + 1) // 2}. Correct."]
    if template == "choose":
        k, m = n[0], n[1]
        steps, top = [], 1
        for i in range(k):
            steps += _product(top, m - i)
            top *= m - i
        fact, facts = 1, []
        for i in range(2, k + 1):
            facts.append(f"{fact} * {i} = {fact * i}.")
            fact *= i
        check, c = [f"Check by dividing as I go (each partial result is a count, so a whole number):"], 1
        for i in range(1, k + 1):
            check.append(f"{c} * {m - i + 1} / {i} = {c * (m - i + 1) // i}.")
            c = c * (m - i + 1) // i
        return ([f"Choose {k} from {m}: multiply {k} factors from {m} down."] + steps
                + [f"{k}! by steps:"] + facts + [f"{top} / {fact} = {top // fact}."] + check
                + [f"Both ways give {c}. So there are {top // fact} ways."])
    if template == "divisor_count":
        m, steps, exps, d = n[0], [], [], 2
        rest = m
        while d * d <= rest:
            e = 0
            while rest % d == 0:
                rest, e = rest // d, e + 1
                steps.append(f"{rest * d} / {d} = {rest}.")
            if e:
                exps.append((d, e))
            d += 1
        if rest > 1:
            exps.append((rest, 1))
        form = " * ".join(f"{p}^{e}" for p, e in exps)
        counts = " * ".join(str(e + 1) for _, e in exps)
        pairs = [f"{d} * {m // d}" for d in range(1, int(m ** 0.5) + 1) if m % d == 0]
        listed = 2 * len(pairs) - (int(m ** 0.5) ** 2 == m)
        return steps + [f"So {m} = {form}.", f"Divisors: {counts} = {int(answer)}.",
                        f"Check by listing the pairs that multiply to {m}: {', '.join(pairs)}.",
                        f"That is {len(pairs)} pairs, {2 * len(pairs)} divisors"
                        + (f", less 1 because {int(m ** 0.5)} * {int(m ** 0.5)} counts once: {listed}." if listed % 2 else f": {listed}.")
                        + (" Correct." if listed == int(answer) else ""),
                        f"So {m} has {int(answer)} divisors."]
    if template == "add_fractions":
        a, b, c, d = n[:4]
        common = b * d // gcd(b, d)
        p, q = a * common // b, c * common // d
        g = gcd(p + q, common)
        return [f"The denominators are {b} and {d}; their least common multiple is {common}.",
                f"{common} / {b} = {common // b}, so {a}/{b} = {a} * {common // b} / {common} = {p}/{common}.",
                f"{common} / {d} = {common // d}, so {c}/{d} = {c} * {common // d} / {common} = {q}/{common}.",
                f"{p} + {q} = {p + q}, over {common}.",
                f"Reduce: the gcd of {p + q} and {common} is {g}"
                + (f"; {p + q} / {g} = {(p + q) // g} and {common} / {g} = {common // g}." if g > 1 else ", nothing to cancel."),
                f"So {a}/{b} + {c}/{d} = {latex(answer)}.",
                f"Check with decimals: {a / b:.3f} + {c / d:.3f} = {a / b + c / d:.3f}, and {latex(answer)} = {float(answer):.3f}. Correct.",
                f"So the answer is {latex(answer)}."]
    if template == "percent":
        pct, base = n[0], n[1]
        tenth = Fraction(base, 10)
        return [f"1% of {base} is {latex(Fraction(base, 100))}.", f"10% of {base} is {latex(tenth)}.",
                f"{pct}% is {pct} times 1%: {pct} * {base} / 100 = {pct * base} / 100 = {latex(answer)}.",
                f"Check with 10%: {pct}% is {latex(Fraction(pct, 10))} times 10%, and {latex(Fraction(pct, 10))} * {latex(tenth)} = {latex(answer)}. Correct.",
                f"So {pct}% of {base} is {latex(answer)}."]
    if template == "larger_root":
        s_, t = n[1], n[2]
        q = int(answer)
        p = s_ - q
        return [f"I need two numbers with sum {s_} and product {t}.", f"Try {p} and {q}: {p} + {q} = {s_}, {p} * {q} = {t}.",
                f"So x^2 - {s_}x + {t} = (x - {p})(x - {q}), and the roots are {p} and {q}.",
                f"Check x = {q}: {q}^2 = {q * q}, {s_} * {q} = {s_ * q}, {q * q} - {s_ * q} + {t} = 0. Correct.",
                f"Check x = {p}: {p}^2 = {p * p}, {s_} * {p} = {s_ * p}, {p * p} - {s_ * p} + {t} = 0. Correct.",
                f"The larger root is {q}."]
    if template == "linear_equation":
        a, b, c = n[:3]
        return [f"Subtract {b} from both sides: {a}x = {c} - {b} = {c - b}.",
                f"Divide by {a}: x = {c - b} / {a} = {latex(answer)}.", f"So x = {latex(answer)}."]
    if template == "average":
        a, b, c = n[:3]
        return [f"{a} + {b} = {a + b}.", f"{a + b} + {c} = {a + b + c}.",
                f"{a + b + c} / 3 = {latex(answer)}.", f"So the average is {latex(answer)}."]
    return [f"So the answer is {latex(answer)}."]


STEP = re.compile(r"(-?\d+(?: [-+*] -?\d+)+) = (-?\d+)")


def _slip(trace: list[str], rng: random.Random) -> list[str] | None:
    """The trace with one arithmetic slip caught and redone: "Wait, 7 * 8 is 56, not 54 — redo."
    None when the trace has no step of the form `a op b = c`."""
    steps = [i for i, s in enumerate(trace) if STEP.search(s) and not s.startswith("Check")]
    if not steps:
        return None
    i = rng.choice(steps)
    expression, value = STEP.search(trace[i]).groups()
    wrong = int(value) + rng.choice([-2, -1, 1, 2, 10])
    slipped = trace[i].replace(f"{expression} = {value}", f"{expression} = {wrong}", 1)
    return trace[:i] + [slipped, f"Wait, {expression} is {value}, not {wrong}. Redo that step.",
                        trace[i]] + trace[i + 1:]





def code_family(name: str) -> dict:
    [family] = [f for f in code_families() if f["family"] == name]
    return family


def code_traces(problem: dict, rng: random.Random) -> list[tuple[list[str], str]]:
    """Distinct (reasoning steps, program) pairs for one code problem.

    A tier-1 family's trace reasons about the approach and the edge cases before the program,
    checks the idea on an example (run here, so the trace quotes what the code really returns),
    and in one style catches its own slip: it drafts one of the family's weaker programs, tests it
    on the hard edge case, names the mistake and fixes it. The programs are the golden one and the
    family's alternatives. A tier-2 family gets a short generic plan and the golden program.
    """
    family = code_family(problem["family"])
    fill = lambda text: Template(text).substitute(problem["variant"])               # noqa: E731
    name = re.search(r"`(\w+)\(", problem["prompt"])
    what = f"the function `{name.group(1)}`" if name else "a program that reads stdin"
    if "plan" not in family:
        return [([f"I need {what}.", "I will handle the edge cases first, then the main loop."],
                 problem["solution"]),
                ([f"The task asks for {what}.", "A single pass over the input is fast enough."],
                 problem["solution"]),
                ([f"Write {what}.", "Check the empty input and the large input sizes."],
                 problem["solution"])]
    programs = [problem["solution"]] + [fill(a) for a in family["alternatives"]]
    plan, edges = [fill(x) for x in family["plan"]], [fill(x) for x in family["edges"]]
    hard = fill(family["tests"]["edge"][0])                       # the combined edge case
    generator = {}
    exec(fill(family["tests"]["typical"]), generator)
    example = repr(generator["generate"](rng))
    run = lambda program, argument: _result(family, fill, program, argument)        # noqa: E731
    check = f"Check the idea on {example}: it gives {run(problem['solution'], example)}."
    slip, draft = rng.choice(list(family["weaker"].items()))
    draft = fill(draft)
    wrong, right = run(draft, hard), run(problem["solution"], hard)
    correction = [f"First draft: `{_key_line(draft)}`.",
                  f"Test the draft on {hard}: it gives {wrong}, but the answer is {right}.",
                  f"Wait, that is wrong: {fill(family['mistakes'][slip])}.",
                  f"Fix it: `{_key_line(problem['solution'])}`.",
                  f"Test again on {hard}: {right}. Correct now."]
    return [([f"I need {what}.", *plan, *edges, check, "Now the program."], programs[0]),
            ([f"The task: {what}.", "Edge cases first.", *edges, "Approach:", *plan, check],
             programs[1 % len(programs)]),
            ([f"I need {what}.", *plan, *correction, *edges[:1], check], programs[0]),
            ([f"Write {what}.", plan[0], *edges, f"Hard case {hard}: the answer is {right}."],
             programs[-1])]


def _key_line(program: str) -> str:
    """The line of a short program that does the work: its return or print."""
    lines = [line.strip() for line in program.strip().splitlines()]
    return next((line for line in reversed(lines) if line.startswith(("return", "print"))),
                lines[-1])


def _result(family: dict, fill, program: str, argument: str) -> str:
    """What `program` returns (or prints) for `argument`, run here: the kit's own programs only."""
    try:
        if family["kind"] == "function":
            return repr(_call(program, fill(family["entry"]), argument))
        return repr(_run_stdio(program, eval(argument)).strip())
    except Exception as err:                       # a weaker draft may crash: say how
        return f"an error ({type(err).__name__})"


def responses(problem: dict, rng: random.Random, count: int, incomplete_rate: float) -> list[dict]:
    """`count` teacher replies to one query (some repeated, some cut off mid-thought)."""
    if problem["domain"] == "math":
        final = boxed_answer(problem["answer"])
        traces = [(steps, c.format(x=final)) for steps in math_traces(problem, rng)
                  for c in CLOSERS]
    else:
        traces = [(steps, f"```python\n{program.rstrip()}\n```")
                  for steps, program in code_traces(problem, rng)]
    replies = []
    for _ in range(count):
        steps, content = rng.choice(traces)
        reasoning = "\n".join(s for s in [rng.choice(OPENERS)] + steps if s)
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

def raw_sft_pool(math_per_tier: list[int], code_families: int, code_variants: list[int],
                 max_candidates: int, incomplete_rate: float, seed: int = 0,
                 more_variants: bool = False) -> list[dict]:
    """Teacher replies for freshly drawn queries: 1..max_candidates replies each, before cleaning.

    `math_per_tier[t - 1]` queries of tier t (fewer where a tier has fewer distinct problems);
    every code variant (with the tier-2 `more_variants` if asked).
    """
    rng = random.Random(f"{seed}-sft")
    drawn, queries = math_problems(max(math_per_tier), seed=seed + 1000), []
    for tier, n in enumerate(math_per_tier, 1):
        queries += [p for p in drawn if p["tier"] == tier][:n]
    queries += code_problems(code_families, code_variants, typical_tests=1, seed=seed,
                             every_variant=True, more_variants=more_variants)   # every constant of a family
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
              max_per_query: int = 8, seed: int = 0,
              heldout_code_ids: set[str] | None = None) -> tuple[list[dict], dict]:
    """The report's three steps, in order; returns the kept records and what each step removed.

    Step 1 drops every query that shares an n-gram with an evaluation prompt. With
    `heldout_code_ids`, a code query is dropped only when it is one of those held-out problems:
    the variants of a code family share their template, so a long template puts every variant
    within 16 words of the held-out one although its constants, and so its program, differ (at
    `gpu` the rule removed every SFT variant of the five tier-2 families with a held-out variant).
    """
    prompts = sorted({r["prompt"] for r in records})
    overlap = dict(zip(prompts, ngram_overlap(prompts, eval_prompts, n)))
    contaminated = {p for p in prompts if overlap[p] > 0}
    kept_variants = set()
    if heldout_code_ids is not None:
        kept_variants = {r["prompt"] for r in records if r["domain"] == "code"
                         and r["prompt"] in contaminated and r["query_id"] not in heldout_code_ids}
        contaminated -= kept_variants
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
                            "responses_removed": len(records) - len(step1),
                            "code_variants_kept": len(kept_variants)},
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
