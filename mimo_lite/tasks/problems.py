"""Verifiable problems: the suites RL trains and evaluates on, in the JSONL contract of DESIGN.md.

MiMo trains RL only on problems a rule can check: 100K math problems (checked with Math-Verify)
and 30K code problems (checked by running test cases), report §3.2. The kit generates its suites
from the templates in `templates/` beside this file (package data, so an installed copy has them):
math in four difficulty tiers, Python problems in two tiers of families (tier 1: one-line
program shapes with a constant from the prompt, which a toy model can learn; tier 2: longer
programs). One problem per line:

    id, domain ("math" | "code"), prompt (the user turn)
    math: answer (the exact answer, checked with Math-Verify), solution (worked), tier, template
    code: tests (each {"input", "output"} or {"code": "assert ..."}, with its "level" once graded),
          solution (the golden program), tier, family, variant

`ensure_problems(profile)` builds both suites, grades every code test Easy/Medium/Hard from the
pass rates of the golden and the weaker solutions, and writes `runs/<profile>/problems/`
(`train.jsonl`, `heldout.jsonl`, `grading.json`, `manifest.json`), reusing them while the
settings and templates are unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import functools
import itertools
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from string import Template

import yaml

from ..artifacts import FORMAT, one_builder, runs_dir, write_json
from ..profile import Profile, load_profile
from .difficulty import grade_problem
from .rewards import LEVELS
from .sandbox import WORKERS, Limits, parse_test

DATA = Path(__file__).resolve().parent / "templates"


# ---- reading, checking and writing problem files --------------------------------------------

def load_problems(path: str | Path) -> list[dict]:
    """Read a JSONL problem file, refusing a bad problem with a message naming it."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"Problem file {str(path)!r} does not exist: build it with "
                         f"ensure_problems(profile) or check the path.")
    problems, seen = [], set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            problem = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg}).") from None
        validate_problem(problem, f"{path}, line {number}")
        if problem["id"] in seen:
            raise ValueError(f"{path}, line {number}: problem id {problem['id']!r} appears twice; "
                             f"ids must be unique.")
        seen.add(problem["id"])
        problems.append(problem)
    return problems


def validate_problem(problem: dict, where: str = "problem") -> None:
    """Check one problem against the contract; ValueError names the problem and what to fix."""
    if not isinstance(problem, dict):
        raise ValueError(f"{where}: a problem must be a JSON object, got {type(problem).__name__}.")
    name = f"{where}: problem {problem.get('id')!r}"
    for key in ("id", "domain", "prompt"):
        if not isinstance(problem.get(key), str) or not problem[key].strip():
            raise ValueError(f"{name} is missing field {key!r} (a non-empty string).")
    if problem["domain"] == "math":
        if not isinstance(problem.get("answer"), str) or not problem["answer"].strip():
            raise ValueError(f"{name} is a math problem without an 'answer' (a non-empty string "
                             f"that Math-Verify can parse, e.g. \"5/6\").")
    elif problem["domain"] == "code":
        tests = problem.get("tests")
        if not isinstance(tests, list) or not tests:
            raise ValueError(f"{name} is a code problem with an empty or missing 'tests' list: "
                             f"give it at least one test.")
        for i, test in enumerate(tests):
            try:
                parse_test(test)
            except ValueError as err:
                raise ValueError(f"{name}, test {i}: {err}.") from None
            if "level" in test and test["level"] not in LEVELS:
                raise ValueError(f"{name}, test {i}: level {test['level']!r} is not one of "
                                 f"{LEVELS}.")
    else:
        raise ValueError(f"{name} has domain {problem['domain']!r}; use 'math' or 'code'.")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tmp.replace(path)


# ---- math: templates in tiers ---------------------------------------------------------------

def math_templates() -> dict[int, list[dict]]:
    return {int(tier): templates
            for tier, templates in yaml.safe_load((DATA / "math.yaml").read_text()).items()}


def math_problems(per_tier: int, seed: int = 0) -> list[dict]:
    """`per_tier` distinct problems per tier (fewer if the tier runs out), drawn round-robin."""
    import sympy

    problems = []
    for tier, templates in math_templates().items():
        rng = random.Random(f"{seed}-math-{tier}")
        prompts, tries, misses = set(), 0, 0
        while len(prompts) < per_tier and misses < 100 * len(templates):
            template = templates[tries % len(templates)]
            tries, misses = tries + 1, misses + 1
            values = {k: sympy.Integer(rng.randint(lo, hi)) for k, (lo, hi) in template["params"].items()}
            if "where" in template and not bool(sympy.sympify(template["where"], locals=values)):
                continue
            for key, expression in template.get("let", {}).items():
                values[key] = sympy.sympify(expression, locals=values)
            values["answer"] = sympy.sympify(template["answer"], locals=values)
            text = {k: str(v) for k, v in values.items()}
            prompt = template["prompt"].format(**text)
            if prompt in prompts:
                continue
            prompts.add(prompt)
            misses = 0
            problems.append({
                "id": f"math-t{tier}-{template['name']}-{_digest(prompt)}", "domain": "math",
                "prompt": prompt, "answer": text["answer"],
                "solution": template["solution"].format(**text),
                "tier": tier, "template": template["name"]})
    return problems


# ---- code: families of Python problems ------------------------------------------------------

@functools.cache
def code_families() -> list[dict]:
    """The families of data/code.yaml, parsed once per process (read them, do not modify them)."""
    return yaml.safe_load((DATA / "code.yaml").read_text())


def family_variants(family: dict, more: bool = False) -> list[dict]:
    """A family's variants: written out (a list, with its `more_variants` after them if `more`),
    or every integer of each range (a dict)."""
    variants = family["variants"]
    if isinstance(variants, list):
        return variants + (family.get("more_variants", []) if more else [])
    ranges = [range(low, high + 1) for low, high in variants.values()]
    return [dict(zip(variants, values)) for values in itertools.product(*ranges)]


def code_solutions(problem: dict) -> dict[str, str]:
    """The golden solution and the weaker ones of a code problem, by name."""
    [family] = [f for f in code_families() if f["family"] == problem["family"]]
    fill = lambda text: Template(text).substitute(problem["variant"])          # noqa: E731
    return {"reference": fill(family["reference"]),
            **{name: fill(code) for name, code in family["weaker"].items()}}


def code_problems(families: int, variants: list[int], typical_tests: int, seed: int = 0,
                  every_variant: bool = False, more_variants: bool = False) -> list[dict]:
    """Code problems of the first `families` families of each tier: `variants[t - 1]` problems per
    family of tier t (a tier-1 family's constants drawn by a seeded shuffle of its range; 0 leaves
    the tier out), or every variant with `every_variant`; `more_variants` adds a tier-2 family's
    `more_variants` after its own. Typical, edge and large tests."""
    problems = []
    by_tier: dict[int, list[dict]] = {}
    for family in code_families():
        by_tier.setdefault(family["tier"], []).append(family)
    for tier, tier_families in sorted(by_tier.items()):
        count = variants[tier - 1] if tier <= len(variants) else 0
        for family in tier_families[:families]:
            indexed = list(enumerate(family_variants(family, more_variants)))
            if isinstance(family["variants"], dict):        # spread the draw over the range
                random.Random(f"{seed}-variants-{family['family']}").shuffle(indexed)
            for index, variant in indexed if every_variant and count else indexed[:count]:
                problems.append(_code_problem(family, index, variant, typical_tests, seed))
    return problems


def _code_problem(family: dict, index: int, variant: dict, typical_tests: int, seed: int) -> dict:
    fill = lambda text: Template(text).substitute(variant)                      # noqa: E731
    problem_id = f"code-{family['family']}-{index}"
    rng = random.Random(f"{seed}-{problem_id}")
    generator = {}
    exec(fill(family["tests"]["typical"]), generator)
    typical = [repr(generator["generate"](rng)) for _ in range(typical_tests)]
    arguments = list(dict.fromkeys(typical + [fill(e) for e in family["tests"]["edge"]]))
    large = [fill(e) for e in family["tests"]["large"]]
    reference = fill(family["reference"])
    if family["kind"] == "function":
        entry = fill(family["entry"])
        tests = [{"code": f"assert {entry}({a}) == {_call(reference, entry, a)!r}"}
                 for a in arguments + large]
    else:
        inputs = [eval(a) for a in arguments + large]
        tests = [{"input": text, "output": _run_stdio(reference, text)} for text in inputs]
    return {"id": problem_id, "domain": "code", "prompt": fill(family["prompt"]), "tests": tests,
            "solution": reference, "tier": family["tier"], "family": family["family"],
            "variant": variant}


def _call(program: str, entry: str, argument: str):
    """The golden solution's result, computed in this process: the templates are the kit's own."""
    namespace = {}
    exec(program, namespace)
    return namespace[entry](eval(argument))


def _run_stdio(program: str, stdin: str) -> str:
    """The golden program's output for `stdin`, run in this process (input() included: a notebook
    kernel replaces the built-in one)."""
    stream = io.StringIO(stdin)

    def read_line(prompt=""):
        line = stream.readline()
        if not line:
            raise EOFError("EOF when reading a line")
        return line.removesuffix("\n")

    saved, sys.stdin = sys.stdin, stream
    try:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            exec(program, {"__name__": "__main__", "input": read_line})
    finally:
        sys.stdin = saved
    return out.getvalue()


# ---- splits and the cached build ------------------------------------------------------------

def split_problems(problems: list[dict], heldout_fraction: float, seed: int = 0):
    """Train and held-out splits stratified by domain and tier (code over all families of a tier)."""
    train, heldout = [], []
    strata = {}
    for p in problems:
        strata.setdefault(p["tier"] if p["domain"] == "math" else f"code-t{p['tier']}", []).append(p)
    for key, group in strata.items():
        group = group[:]
        random.Random(f"{seed}-split-{key}").shuffle(group)
        n = round(heldout_fraction * len(group))
        if len(group) >= 2 and heldout_fraction > 0:
            n = max(1, n)
        heldout += group[:n]
        train += group[n:]
    return train, heldout


def generated_splits(profile: str | Profile) -> tuple[list[dict], list[dict]]:
    """Both suites of `profile`, split into train and held-out before any grading, in memory.

    The split is fixed here, so that the held-out problems are known without the sandbox: the
    corpus build (notebook 01) decontaminates against them before `problems/` exists.
    """
    profile = load_profile(profile) if isinstance(profile, str) else profile
    cfg = profile.problems
    math = math_problems(cfg.math_per_tier, profile.seed)
    code = code_problems(cfg.code_families, cfg.code_variants, cfg.typical_tests, profile.seed,
                         more_variants=cfg.more_code_variants)
    return split_problems(math + code, cfg.heldout_fraction, profile.seed)


def suite_digest(profile: Profile) -> str:
    """What decides the generated suites (seed, sizes, templates): equal digests, equal problems."""
    return _digest(json.dumps([FORMAT["problems"], profile.seed, dataclasses.asdict(profile.problems),
                               (DATA / "math.yaml").read_text(), (DATA / "code.yaml").read_text()]))


def heldout_texts(profile: str | Profile) -> list[str]:
    """What must not leak into pre-training: each held-out prompt, and each held-out code
    problem's golden solution (a superset of `heldout.jsonl`, which drops a failing golden)."""
    _, heldout = generated_splits(profile)
    return [p["prompt"] for p in heldout] + [p["solution"] for p in heldout if p["domain"] == "code"]


def problems_key(profile: str | Profile) -> str:
    """The fingerprint of `problems/` (its manifest's `key`): the suites and the sandbox limits
    the tests are graded under."""
    profile = load_profile(profile) if isinstance(profile, str) else profile
    return _digest(json.dumps([suite_digest(profile), dataclasses.asdict(Limits())]))


@one_builder("problems")
def ensure_problems(profile: str | Profile, runs_root: str | Path | None = None) -> Path:
    """`runs/<profile>/problems/` with both splits and the test grading; built when missing.

    The tests are graded under the sandbox's default limits, the limits rewards run under.
    """
    profile = load_profile(profile) if isinstance(profile, str) else profile
    settings = dataclasses.asdict(profile.problems)
    limits = Limits()
    key = problems_key(profile)
    folder = runs_dir(profile.name, runs_root) / "problems"
    manifest = folder / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("key") == key:
        print(f"Problems: using {folder} (built earlier with these settings).")
        return folder
    print(f"Problems: building {folder} (templates in {DATA}, settings {settings}) ...")
    start = time.time()
    folder.mkdir(parents=True, exist_ok=True)
    train, heldout = generated_splits(profile)
    code = [p for p in train + heldout if p["domain"] == "code"]
    with ThreadPoolExecutor(WORKERS) as pool:    # the sandbox's slots bound the processes
        grades = list(pool.map(lambda p: grade_problem(p, code_solutions(p), limits), code))
    dropped, grading = [], {}
    for problem, grade in zip(code, grades):
        if not all(grade["passed"][grade["solutions"].index("reference")]):
            dropped.append(problem["id"])        # the golden solution fails one of its tests
            continue
        for test, level in zip(problem["tests"], grade["levels"]):
            test["level"] = level
        grading[problem["id"]] = grade
    train = [p for p in train if p["id"] not in dropped]
    heldout = [p for p in heldout if p["id"] not in dropped]
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "heldout.jsonl", heldout)
    write_json(folder / "grading.json", grading)
    counts = {split: {d: sum(p["domain"] == d for p in rows) for d in ("math", "code")}
              for split, rows in (("train", train), ("heldout", heldout))}
    write_json(manifest, {"key": key, "counts": counts, "dropped": dropped,
                          "build_seconds": round(time.time() - start, 1)})
    print(f"Problems: {counts}, dropped {len(dropped)}, in {time.time() - start:.0f} s.")
    return folder


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]
