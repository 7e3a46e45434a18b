"""Generated math: easy worked problems with exact answers, and short expositions.

MiMo's corpus is rich in math pages that keep their equations (report §2.1). The kit cannot
download any, so it writes its own: arithmetic, fractions, one- and two-step word problems and
linear equations, each solved step by step by a small programmatic solver and checked exactly
with `fractions.Fraction`. The same problems appear as textbook text, as worksheets, as
expositions of a method, and as chat turns whose `<think>` block holds the steps and whose reply
ends in `\\boxed{answer}` — the format the RL stage later rewards. A chat turn is a worked response
to a query, the synthetic reasoning MiMo keeps out of stages 1–2 (report §2.1), so its domain is
`synthetic_reasoning`, not `math`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction

from ..chat import render_chat


@dataclass
class Worked:
    """A solved problem. `value` is the exact answer; `answer` its LaTeX form for `\\boxed{}`."""
    kind: str
    question: str
    steps: list[str]
    value: Fraction
    check: str = ""          # a line that verifies the answer (used by the reasoning traces)

    @property
    def answer(self) -> str:
        return latex(self.value)


def latex(value: Fraction) -> str:
    """-3, 7, \\frac{5}{3}, -\\frac{1}{2}: what goes inside \\boxed{}."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


NAMES = ["Maria", "Tom", "Aisha", "Kenji", "Lena", "Omar", "Priya", "Lucas", "Mei", "Diego",
         "Sara", "Noah", "Fatima", "Ivan", "Chloe", "Ravi", "Emma", "Kofi", "Yuki", "Ben"]
ITEMS = ["apples", "marbles", "stickers", "books", "pencils", "cookies", "stamps", "cards",
         "shells", "coins", "eggs", "balloons", "oranges", "toy cars", "beads"]
PLACES = ["ones", "tens", "hundreds", "thousands", "ten-thousands"]


def pick(rng: random.Random, options):
    return options[rng.randrange(len(options))]


def _pronoun(name: str) -> str:
    return "She" if name in {"Maria", "Aisha", "Lena", "Priya", "Mei", "Sara", "Fatima", "Chloe",
                             "Emma", "Yuki"} else "He"


# --- arithmetic ---------------------------------------------------------------------------

def addition(rng: random.Random) -> Worked:
    digits = pick(rng, [1, 1, 2, 2, 2, 3, 4])
    a, b = rng.randrange(10 ** digits), rng.randrange(10 ** digits)
    q = pick(rng, ["What is {a} + {b}?", "Compute {a} + {b}.", "Find the sum of {a} and {b}.",
                    "Add {a} and {b}.", "Calculate {a} plus {b}.", "{a} + {b} = ?"])
    return Worked("addition", q.format(a=a, b=b), column_addition(a, b), Fraction(a + b),
                  f"{a + b} - {b} = {a}")


def column_addition(a: int, b: int) -> list[str]:
    """Add digit by digit from the ones place, carrying tens (the schoolbook algorithm)."""
    if a < 10 and b < 10:
        return [f"{a} + {b} = {a + b}."]
    da, db = str(a)[::-1], str(b)[::-1]
    steps, carry = [], 0
    for i in range(max(len(da), len(db))):
        x, y = int(da[i]) if i < len(da) else 0, int(db[i]) if i < len(db) else 0
        total = x + y + carry
        terms = f"{x} + {y}" + (f" + {carry}" if carry else "")
        carry_text = f", write {total % 10} and carry 1" if total >= 10 else ""
        steps.append(f"{PLACES[min(i, 4)].capitalize()}: {terms} = {total}{carry_text}.")
        carry = total // 10
    if carry:
        steps.append("Write the final carry 1 in front.")
    steps.append(f"So {a} + {b} = {a + b}.")
    return steps


def subtraction(rng: random.Random) -> Worked:
    b = rng.randrange(1, pick(rng, [10, 50, 100, 1000]))
    a = b + rng.randrange(0, pick(rng, [10, 60, 200, 1000]))
    q = pick(rng, ["What is {a} - {b}?", "Subtract {b} from {a}.", "Compute {a} - {b}.",
                    "How much is {a} minus {b}?", "Find the difference {a} - {b}."])
    tens, ones = b - b % 10, b % 10
    if tens and ones:
        steps = [f"Split {b} into {tens} + {ones}.", f"{a} - {tens} = {a - tens}.",
                 f"{a - tens} - {ones} = {a - b}."]
    else:
        steps = [f"{a} - {b} = {a - b}."]
    return Worked("subtraction", q.format(a=a, b=b), steps, Fraction(a - b),
                  f"{a - b} + {b} = {a}")


def multiplication(rng: random.Random) -> Worked:
    a = rng.randrange(2, pick(rng, [10, 10, 100, 100]))
    b = rng.randrange(2, pick(rng, [10, 10, 10, 100]))
    sym = pick(rng, ["×", "*"])
    q = pick(rng, ["What is {a} {s} {b}?", "Compute {a} {s} {b}.", "Find the product of {a} "
                    "and {b}.", "What is {a} times {b}?", "Multiply {a} by {b}."])
    if a < 10 and b < 10:
        steps = [f"{a} {sym} {b} = {a * b}."]
    else:                      # distributive law: a·(t + u) = a·t + a·u, t the tens part of b
        a, b = (b, a) if b < 10 else (a, b)
        t, u = b - b % 10, b % 10
        steps = [f"Split {b} into {t} + {u}: {a} {sym} {b} = {a} {sym} {t} + {a} {sym} {u}.",
                 f"{a} {sym} {t} = {a * t}.", f"{a} {sym} {u} = {a * u}.",
                 f"{a * t} + {a * u} = {a * b}."] if u and t else [f"{a} {sym} {b} = {a * b}."]
    return Worked("multiplication", q.format(a=a, b=b, s=sym), steps, Fraction(a * b),
                  f"{a * b} ÷ {b} = {a}")


def division(rng: random.Random) -> Worked:
    b, quotient = rng.randrange(2, 13), rng.randrange(1, pick(rng, [13, 13, 50]))
    a = b * quotient
    q = pick(rng, ["What is {a} ÷ {b}?", "Divide {a} by {b}.", "Compute {a} / {b}.",
                    "How many times does {b} go into {a}?"])
    return Worked("division", q.format(a=a, b=b),
                  [f"We need the number that gives {a} when multiplied by {b}.",
                   f"{b} × {quotient} = {a}, so {a} ÷ {b} = {quotient}."],
                  Fraction(quotient), f"{b} × {quotient} = {a}")


# --- fractions ----------------------------------------------------------------------------

def fraction_sum(rng: random.Random) -> Worked:
    b, d = rng.randrange(2, 11), rng.randrange(2, 11)
    a, c = rng.randrange(1, b + 3), rng.randrange(1, d + 3)
    L = math.lcm(b, d)                       # least common denominator
    x, y = a * L // b, c * L // d
    total = Fraction(a, b) + Fraction(c, d)
    q = pick(rng, ["What is {a}/{b} + {c}/{d}?", "Add the fractions {a}/{b} and {c}/{d}.",
                    "Compute {a}/{b} + {c}/{d} and simplify."])
    steps = [f"The least common denominator of {b} and {d} is {L}.",
             f"{a}/{b} = {x}/{L} and {c}/{d} = {y}/{L}.", f"{x}/{L} + {y}/{L} = {x + y}/{L}."]
    g = math.gcd(x + y, L)
    if g > 1:
        steps.append(f"Divide top and bottom by {g}: {x + y}/{L} = {_slash(total)}.")
    return Worked("fraction_sum", q.format(a=a, b=b, c=c, d=d), steps, total,
                  f"{_slash(total)} - {c}/{d} = {_slash(Fraction(a, b))}")


def fraction_product(rng: random.Random) -> Worked:
    a, b, c, d = (rng.randrange(1, 10), rng.randrange(2, 10), rng.randrange(1, 10),
                  rng.randrange(2, 10))
    product = Fraction(a * c, b * d)
    q = pick(rng, ["What is {a}/{b} × {c}/{d}?", "Multiply {a}/{b} by {c}/{d}.",
                    "Find the product of {a}/{b} and {c}/{d}."])
    steps = [f"Multiply the numerators: {a} × {c} = {a * c}.",
             f"Multiply the denominators: {b} × {d} = {b * d}."]
    g = math.gcd(a * c, b * d)
    if g > 1:
        steps.append(f"Simplify {a * c}/{b * d} by dividing by {g}: {_slash(product)}.")
    steps.append(f"So {a}/{b} × {c}/{d} = {_slash(product)}.")
    return Worked("fraction_product", q.format(a=a, b=b, c=c, d=d), steps, product,
                  f"{_slash(product)} ÷ {c}/{d} = {_slash(Fraction(a, b))}")


def _slash(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


# --- word problems ------------------------------------------------------------------------

def word_problem(rng: random.Random) -> Worked:
    name, friend = rng.sample(NAMES, 2)
    he, items = _pronoun(name), pick(rng, ITEMS)
    kind = rng.randrange(7)
    if kind == 0:
        a, b = rng.randrange(2, 60), rng.randrange(2, 40)
        q = (f"{name} has {a} {items}. {he} gets {b} more. How many {items} does {name} have "
             f"now?")
        return Worked("word_add", q, [f"{name} starts with {a} and gains {b}.",
                                      f"{a} + {b} = {a + b}."], Fraction(a + b))
    if kind == 1:
        a = rng.randrange(5, 80)
        b = rng.randrange(1, a)
        q = f"{name} had {a} {items} and gave {b} to {friend}. How many {items} are left?"
        return Worked("word_subtract", q, [f"Giving away {b} leaves {a} - {b}.",
                                           f"{a} - {b} = {a - b}."], Fraction(a - b))
    if kind == 2:
        a, b = rng.randrange(2, 13), rng.randrange(2, 10)
        q = f"Each box holds {a} {items}. How many {items} are in {b} boxes?"
        return Worked("word_multiply", q, [f"{b} boxes of {a} each is {b} × {a}.",
                                           f"{b} × {a} = {a * b}."], Fraction(a * b))
    if kind == 3:
        b, each = rng.randrange(2, 9), rng.randrange(2, 12)
        q = (f"{name} shares {b * each} {items} equally among {b} friends. How many {items} "
             f"does each friend get?")
        return Worked("word_divide", q, [f"Equal shares means dividing {b * each} by {b}.",
                                         f"{b * each} ÷ {b} = {each}."], Fraction(each))
    if kind == 4:
        n, price = rng.randrange(2, 8), rng.randrange(1, 10)
        bill = pick(rng, [b for b in (10, 20, 50, 100) if b > n * price])
        q = (f"{name} buys {n} notebooks at {price} dollars each and pays with a {bill}-dollar "
             f"bill. How much change does {he.lower()} get?")
        return Worked("word_two_step", q, [f"The notebooks cost {n} × {price} = {n * price} "
                                           f"dollars.", f"The change is {bill} - {n * price} = "
                                           f"{bill - n * price} dollars."],
                      Fraction(bill - n * price))
    if kind == 5:
        a, b = rng.randrange(5, 40), rng.randrange(5, 40)
        total = a + b + rng.randrange(1, 60)
        q = (f"A book has {total} pages. {name} reads {a} pages on Monday and {b} pages on "
             f"Tuesday. How many pages are left?")
        return Worked("word_two_step", q, [f"{name} read {a} + {b} = {a + b} pages.",
                                           f"{total} - {a + b} = {total - a - b} pages are "
                                           f"left."], Fraction(total - a - b))
    rows, cols = rng.randrange(2, 9), rng.randrange(2, 9)
    empty = rng.randrange(0, rows * cols)
    q = (f"A classroom has {rows} rows of {cols} desks. {empty} desks are empty. How many "
         f"students are seated?")
    return Worked("word_two_step", q, [f"There are {rows} × {cols} = {rows * cols} desks.",
                                       f"{rows * cols} - {empty} = {rows * cols - empty} "
                                       f"students are seated."], Fraction(rows * cols - empty))


# --- linear equations ---------------------------------------------------------------------

def linear_equation(rng: random.Random) -> Worked:
    var = pick(rng, ["x", "x", "y", "n"])
    a = rng.randrange(2, 10) if rng.random() < 0.8 else 1
    b = rng.randrange(-20, 21)
    if rng.random() < 0.8:
        x = Fraction(rng.randrange(-10, 21))
        c = a * x + b
    else:                                   # a fractional solution
        c = Fraction(rng.randrange(-20, 41))
        x = (c - b) / a
    left = (f"{a}{var}" if a != 1 else var) + (f" + {b}" if b > 0 else f" - {-b}" if b < 0 else "")
    q = pick(rng, ["Solve for {v}: {e}.", "Find {v} if {e}.", "Solve the equation {e}.",
                    "What value of {v} satisfies {e}?"]).format(v=var, e=f"{left} = {c}")
    steps = []
    if b:
        verb = f"Subtract {b} from" if b > 0 else f"Add {-b} to"
        steps.append(f"{verb} both sides: {a if a != 1 else ''}{var} = {_slash(c - b)}.")
    if a != 1:
        steps.append(f"Divide both sides by {a}: {var} = {_slash(x)}.")
    if not steps:
        steps.append(f"{var} = {_slash(x)}.")
    shown = f"({_slash(x)})" if x < 0 else _slash(x)
    check = f"{a} × {shown} {'-' if b < 0 else '+'} {abs(b)} = {_slash(a * x + b)}"
    return Worked("linear_equation", q, steps, x, check)


GENERATORS = [addition, addition, subtraction, subtraction, multiplication, multiplication,
              division, fraction_sum, fraction_product, word_problem, word_problem,
              word_problem, linear_equation, linear_equation]


def worked_problem(rng: random.Random) -> Worked:
    """One easy problem, weighted towards the small-number arithmetic RL-Zero starts from."""
    return pick(rng, GENERATORS)(rng)


# --- the same problems, written four ways -------------------------------------------------

FINAL = ["\\boxed{{{a}}}", "The answer is \\boxed{{{a}}}.", "So the answer is \\boxed{{{a}}}.",
         "Answer: \\boxed{{{a}}}"]


def as_chat(w: Worked, rng: random.Random) -> str:
    """User turn = the problem; assistant turn = <think> steps </think> then the boxed answer."""
    return render_chat([
        {"role": "user", "content": w.question},
        {"role": "assistant", "reasoning_content": "\n".join(w.steps),
         "content": pick(rng, FINAL).format(a=w.answer)}])


def as_textbook(w: Worked, rng: random.Random) -> str:
    head, sol = pick(rng, [("Problem", "Solution"), ("Question", "Answer"),
                            ("Exercise", "Worked solution"), ("Example", "Solution")])
    return f"{head}: {w.question}\n{sol}: {' '.join(w.steps)}\nThe answer is $\\boxed{{{w.answer}}}$."


def as_worksheet(rng: random.Random, n: int) -> str:
    title = pick(rng, ["Practice set", "Homework", "Warm-up exercises", "Review problems"])
    lines = [f"{title} with solutions", ""]
    for i in range(1, n + 1):
        w = worked_problem(rng)
        lines += [f"{i}. {w.question}", *("   " + s for s in w.steps), f"   Answer: {w.answer}",
                  ""]
    return "\n".join(lines).strip()


EXPOSITIONS = {
    "addition": ("Adding with carries. Line the numbers up by place value and add the columns "
                 "from right to left, starting with the ones. When a column adds up to ten or "
                 "more, write the ones digit and carry the tens digit into the next column."),
    "subtraction": ("Subtracting by splitting. To subtract a two-digit number, take away its tens "
                    "first and then its ones. Each step is a smaller subtraction that is easy "
                    "to do in your head."),
    "multiplication": ("Multiplying by splitting. The distributive law says a × (b + c) = a × b "
                       "+ a × c. Split the larger factor into tens and ones, multiply each part, "
                       "and add the two products."),
    "division": ("Checking a division. Division undoes multiplication: a ÷ b is the number that "
                 "gives a when multiplied by b. So every division can be checked by multiplying "
                 "the answer back."),
    "fraction_sum": ("Adding fractions. Fractions can be added only when they have the same "
                     "denominator. Rewrite both over the least common multiple of the "
                     "denominators, add the numerators, and simplify by the greatest common "
                     "divisor."),
    "fraction_product": ("Multiplying fractions. Multiply the numerators together and the "
                         "denominators together, then cancel any common factor."),
    "linear_equation": ("Solving a linear equation. Undo the operations around the unknown in "
                        "reverse order, doing the same thing to both sides so that the equation "
                        "stays true: first remove the added constant, then divide by the "
                        "coefficient. Substitute the result back to check it."),
}


def as_exposition(rng: random.Random) -> str:
    """A short explanation of one method followed by worked examples of it."""
    kind = pick(rng, list(EXPOSITIONS))
    generator = {g.__name__: g for g in GENERATORS}[kind]
    examples = [generator(rng) for _ in range(rng.randrange(1, 4))]
    parts = [EXPOSITIONS[kind]]
    for w in examples:
        parts.append(f"{pick(rng, ['For example', 'Example', 'Take'])}: {w.question} "
                     f"{' '.join(w.steps)} The result is {w.answer}.")
    return "\n\n".join(parts)


def math_documents(n: int, rng: random.Random) -> list[dict]:
    """`n` documents: 45% chat turns (domain `synthetic_reasoning`), then in the `math` domain
    25% textbook, 15% worksheets, 15% expositions."""
    from .documents import document
    docs = []
    for _ in range(n):
        r = rng.random()
        if r < 0.45:
            docs.append(document(as_chat(worked_problem(rng), rng), "math_chat", "synthetic_reasoning"))
            continue
        if r < 0.70:
            text, source = as_textbook(worked_problem(rng), rng), "math_textbook"
        elif r < 0.85:
            text, source = as_worksheet(rng, rng.randrange(3, 8)), "math_worksheet"
        else:
            text, source = as_exposition(rng), "math_exposition"
        docs.append(document(text, source, "math"))
    return docs
