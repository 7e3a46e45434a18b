import ast
import random
import re
import time
from fractions import Fraction

import pytest
from math_verify import parse, verify

from mimo_lite.data.documents import admit, document, split_long
from mimo_lite.data.low_value import low_value_documents, planted_copies
from mimo_lite.data.reasoning import code_task, reasoning_documents
from mimo_lite.data.sources import (code_documents, docstring_documents, pydoc_documents,
                                    stdlib_files)
from mimo_lite.data.worked_math import GENERATORS, latex, math_documents, worked_problem


def value(expr: str) -> Fraction:
    """Evaluate + - × ÷ * / ( ) over integers exactly (a tiny recursive-descent parser)."""
    tokens = re.findall(r"\d+|[-+*/×÷()]", expr)
    pos = 0

    def atom():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            v = add()
            pos += 1
            return v
        if tok == "-":
            return -atom()
        return Fraction(int(tok))

    def mul():
        nonlocal pos
        v = atom()
        while pos < len(tokens) and tokens[pos] in "*/×÷":
            op = tokens[pos]
            pos += 1
            v = v * atom() if op in "*×" else v / atom()
        return v

    def add():
        nonlocal pos
        v = mul()
        while pos < len(tokens) and tokens[pos] in "+-":
            op = tokens[pos]
            pos += 1
            v = v + mul() if op == "+" else v - mul()
        return v

    return add()


RUN = re.compile(r"[\d\s+\-*/×÷()=]+")     # maximal stretches of pure arithmetic


def equalities(step: str) -> list[list[str]]:
    """Chains "e1 = e2 = ..." written with numbers and operators only (no unknowns)."""
    chains = []
    for run in RUN.findall(step):
        parts = [p.strip() for p in run.split("=")]
        if len(parts) > 1 and all(re.search(r"\d", p) for p in parts):
            chains.append(parts)
    return chains


@pytest.mark.parametrize("generator", sorted(set(GENERATORS), key=lambda g: g.__name__))
def test_every_arithmetic_step_is_true_and_the_answer_is_the_last_result(generator):
    rng = random.Random(1)
    for _ in range(300):
        w = generator(rng)
        chains = [c for step in w.steps for c in equalities(step)]
        assert chains or w.kind == "linear_equation", w.steps
        for chain in chains:
            assert len({value(e) for e in chain}) == 1, (w.question, chain)
        last = re.findall(r"-?\d+(?:/\d+)?", w.steps[-1])[-1]
        assert Fraction(last) == w.value, (w.question, w.steps)


def test_linear_equation_answers_satisfy_their_equation():
    rng = random.Random(2)
    for _ in range(300):
        w = GENERATORS[-1](rng)
        m = re.search(r"(\d*)([a-z]) ([+-]) (\d+) = (-?\d+)|(\d*)([a-z]) = (-?\d+)", w.question)
        if m.group(2):
            a = int(m.group(1) or 1)
            b = int(m.group(4)) * (1 if m.group(3) == "+" else -1)
            c = int(m.group(5))
        else:
            a, b, c = int(m.group(6) or 1), 0, int(m.group(8))
        assert a * w.value + b == c, w.question


def test_math_verify_reads_every_boxed_answer():
    rng = random.Random(3)
    for _ in range(200):
        w = worked_problem(rng)
        boxed = parse(f"\\boxed{{{w.answer}}}")
        assert verify(parse(f"${w.value}$"), boxed), (w.answer, w.value)
    assert latex(Fraction(-1, 2)) == "-\\frac{1}{2}" and latex(Fraction(6, 3)) == "2"


CHAT = re.compile(r"<\|im_start\|>user\n(.+?)<\|im_end\|>\n<\|im_start\|>assistant\n<think>\n"
                  r"(.+?)\n</think>\n(.+?)<\|im_end\|>\n", re.S)


def test_math_chat_documents_use_the_chat_format_and_end_in_a_boxed_answer():
    docs = math_documents(300, random.Random(4))
    chats = [d["text"] for d in docs if d["source"] == "math_chat"]
    assert len(chats) > 80
    for text in chats:
        m = CHAT.fullmatch(text)
        assert m, text
        assert "\\boxed{" in m.group(3) and m.group(2).strip()
    questions = {CHAT.fullmatch(t).group(1).split()[0] for t in chats}
    assert len(questions) >= 8             # the wording varies


REFERENCE = {
    "sum_multiples": lambda k: lambda nums: sum(x for x in nums if x % k == 0),
    "count_vowels": lambda _: lambda s: sum(c in "aeiou" for c in s.lower()),
    "factorial": lambda _: lambda n: __import__("math").factorial(n),
    "fibonacci": lambda _: lambda n: round(((1 + 5 ** .5) / 2) ** n / 5 ** .5),
    "is_prime": lambda _: lambda n: n > 1 and all(n % d for d in range(2, n)),
    "largest": lambda _: max,
    "is_palindrome": lambda _: lambda s: s.replace(" ", "") == s.replace(" ", "")[::-1],
    "digit_sum": lambda _: lambda n: sum(map(int, str(n))),
    "gcd": lambda _: __import__("math").gcd,
    "count_above": lambda t: lambda nums: sum(x > t for x in nums),
}
FAMILY = {"total_of_multiples": "sum_multiples", "sum_divisible": "sum_multiples",
          "vowel_count": "count_vowels", "num_vowels": "count_vowels", "fact": "factorial",
          "product_up_to": "factorial", "fib": "fibonacci", "nth_fibonacci": "fibonacci",
          "prime": "is_prime", "check_prime": "is_prime", "find_max": "largest",
          "maximum": "largest", "palindrome": "is_palindrome",
          "reads_same_backwards": "is_palindrome", "sum_of_digits": "digit_sum",
          "add_digits": "digit_sum", "greatest_common_divisor": "gcd", "euclid": "gcd",
          "count_greater": "count_above", "how_many_above": "count_above"}


def test_code_solutions_agree_with_independent_references():
    rng = random.Random(5)
    families = set()
    for _ in range(400):
        task = code_task(rng)
        call = ast.parse(task.call, mode="eval").body
        name = call.func.id
        family = FAMILY.get(name, name)
        families.add(family)
        param = re.search(r"(?:divisible by|greater than) (-?\d+)", task.prompt)
        reference = REFERENCE[family](int(param.group(1)) if param else None)
        args = [ast.literal_eval(a) for a in call.args]
        assert task.run_example() == reference(*args), task.call
    assert families == set(REFERENCE)


def test_reasoning_traces_quote_the_result_of_their_own_code():
    for doc in reasoning_documents(200, random.Random(6)):
        m = CHAT.fullmatch(doc["text"])
        assert m, doc["text"]
        if doc["source"] == "reasoning_code":
            code = re.fullmatch(r"(?:.*\n\n)?```python\n(.+)\n```", m.group(3), re.S).group(1)
            call, claimed = re.search(r"example: (.+) should return (.+)\.\n", m.group(2)).groups()
            namespace = {}
            exec(code, namespace)
            assert repr(eval(call, namespace)) == claimed
        else:
            assert "\\boxed{" in m.group(3) and "So the answer is" in m.group(2)


def test_admit_skips_and_counts_bad_input_and_splits_huge_documents():
    huge_line = "word " * 1_200_000                        # 6 MB on one line
    huge_lines = ("a line of text\n" * 400_000)              # 6 MB of lines
    raw = [document("", "t", "general"), document("   \n\t ", "t", "general"),
           document(b"\xff\xfe broken bytes \xc3\x28", "t", "code"),
           document("lone surrogate \udcff", "t", "code"),
           document("ok text".encode(), "t", "code"),
           document(huge_line, "t", "general"), document(huge_lines, "t", "general")]
    t0 = time.perf_counter()
    kept, counts = admit(raw, max_chars=5000)
    assert time.perf_counter() - t0 < 10
    assert counts == {"empty": 2, "invalid_utf8": 2, "split_long": 2}
    assert kept[0]["text"] == "ok text"
    assert all(0 < len(d["text"]) <= 5000 for d in kept)
    parts = [d["text"] for d in kept[1:] if d["text"].startswith("a line")]
    assert sum(p.count("\n") + 1 for p in parts) == 400_000      # every line kept, once
    with pytest.raises(TypeError, match="must be str or bytes"):
        admit([document(123, "t", "general")], 100)
    with pytest.raises(ValueError, match="Unknown domain"):
        document("x", "t", "poetry")


def test_split_long_cuts_at_line_breaks():
    text = "\n".join(f"line {i}" for i in range(1000))
    parts = split_long(text, 300)
    assert all(len(p) <= 300 for p in parts)
    assert "\n".join(parts) == text


def test_stdlib_sources_are_real_files_and_prose():
    rng = random.Random(7)
    files = stdlib_files(5, rng)
    code = code_documents(files)
    assert [d["text"] for d in code] == [f.read_bytes() for f in files]
    modules = stdlib_files(30, rng, tests=False)
    assert not any("test" in f.parts for f in modules)
    prose, _ = docstring_documents(modules)
    assert prose and all(d["domain"] == "general" and d["text"].startswith("Help on")
                         for d in prose)
    topics = pydoc_documents(3)
    assert len(topics) == 3 and all(len(d["text"]) > 100 for d in topics)


def test_low_value_documents_are_labelled_and_copies_are_marked():
    rng = random.Random(8)
    junk = low_value_documents(200, rng, ["A real sentence about the standard library."])
    assert all(d["low_value"] for d in junk)
    assert {d["source"] for d in junk} == {"ads", "boilerplate", "job_posts", "keyword_stuffing",
                                           "generated_code"}
    docs = pydoc_documents(20)
    copies = planted_copies(docs, 5, 7, rng)
    assert [c["planted"] for c in copies] == ["exact"] * 5 + ["near"] * 7
    originals = {d["text"] for d in docs}
    assert all(c["text"].endswith("\n") and c["text"][:-1] in originals for c in copies[:5])
    assert not any(c["text"] in originals for c in copies[5:])


def test_every_think_response_is_synthetic_reasoning():
    import random

    import pytest

    from mimo_lite.data.documents import document
    from mimo_lite.data.worked_math import math_documents

    docs = math_documents(200, random.Random(0))
    assert {d["domain"] for d in docs if "<think>" in d["text"]} == {"synthetic_reasoning"}
    assert {d["domain"] for d in docs if d["source"] == "math_chat"} == {"synthetic_reasoning"}
    assert any(d["domain"] == "math" for d in docs)
    with pytest.raises(ValueError, match="synthetic_reasoning"):
        document("<think>\nstep\n</think> 4", "forum", "math")
