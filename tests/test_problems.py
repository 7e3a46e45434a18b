import builtins
import json
from collections import Counter

import pytest

from mimo_lite.tasks.problems import (code_families, code_problems, code_solutions, ensure_problems,
                                     family_variants, load_problems,
                                     math_problems, split_problems, validate_problem)
from mimo_lite.tasks.rewards import math_reward
from mimo_lite.tasks.sandbox import run_tests


@pytest.fixture(scope="module")
def smoke_problems(smoke_runs):
    """The smoke suites, built once into the session's runs/ (notebook 07 then reuses them)."""
    return ensure_problems("smoke", smoke_runs)


def test_math_tiers_hold_distinct_problems_whose_worked_answer_verifies():
    problems = math_problems(per_tier=15, seed=3)
    assert Counter(p["tier"] for p in problems) == {1: 15, 2: 15, 3: 15, 4: 15}
    assert len({p["prompt"] for p in problems}) == len(problems)
    assert len({p["id"] for p in problems}) == len(problems)
    for p in problems:
        validate_problem(p)
        assert math_reward(f"<think>{p['solution']}</think> \\boxed{{{p['answer']}}}",
                           p["answer"]) == 1.0
    tier_1 = [p for p in problems if p["tier"] == 1]
    assert all(int(p["answer"]) <= 81 for p in tier_1)        # one step on one-digit numbers


def test_math_generation_is_seeded():
    assert math_problems(5, seed=1) == math_problems(5, seed=1)
    assert math_problems(5, seed=1) != math_problems(5, seed=2)


def test_code_problems_have_10_to_30_tests_and_their_golden_solution_passes():
    problems = code_problems(families=9, variants=[1, 1], typical_tests=6, seed=0)
    assert len({p["family"] for p in problems}) == 14
    assert Counter(p["tier"] for p in problems) == {1: 5, 2: 9}
    kinds = Counter("code" in p["tests"][0] for p in problems)
    assert kinds[True] >= 1 and kinds[False] >= 1           # assertion and stdin/stdout families
    for p in problems:
        validate_problem(p)
        assert 10 <= len(p["tests"]) <= 30, p["id"]
        solutions = code_solutions(p)
        assert solutions["reference"] == p["solution"] and len(solutions) >= 3
    family = problems[0]
    assert all(r.passed for r in run_tests(family["solution"], family["tests"]))


def test_expected_outputs_do_not_rely_on_the_builtin_input(monkeypatch):
    """A notebook kernel replaces input(); the golden program still reads its test's stdin."""
    def no_console(*_):
        raise RuntimeError("no console here")
    monkeypatch.setattr(builtins, "input", no_console)
    [problem] = [p for p in code_problems(9, [0, 1], 3, seed=0) if p["family"] == "most_frequent_word"]
    assert "input()" in problem["solution"]
    assert all(r.passed for r in run_tests(problem["solution"], problem["tests"]))


def test_splits_are_disjoint_and_cover_every_tier():
    problems = math_problems(10, seed=0) + code_problems(3, [2, 2], 4, seed=0)
    train, heldout = split_problems(problems, 0.2, seed=0)
    assert len(train) + len(heldout) == len(problems)
    assert not {p["id"] for p in train} & {p["id"] for p in heldout}
    assert {(p["domain"], p["tier"]) for p in heldout} == {("math", t) for t in (1, 2, 3, 4)} | {
        ("code", 1), ("code", 2)}


def test_ensure_problems_writes_graded_splits_and_reuses_them(smoke_problems, smoke_runs, capsys):
    folder = smoke_problems
    train, heldout = load_problems(folder / "train.jsonl"), load_problems(folder / "heldout.jsonl")
    code = [p for p in train + heldout if p["domain"] == "code"]
    assert code and all("level" in t for p in code for t in p["tests"])
    grading = json.loads((folder / "grading.json").read_text())
    assert set(grading) == {p["id"] for p in code}
    for p in code:
        assert [t["level"] for t in p["tests"]] == grading[p["id"]]["levels"]
    levels = Counter(t["level"] for p in code for t in p["tests"])
    assert levels["Easy"] and levels["Hard"]                 # the weaker solvers spread them
    before = (folder / "train.jsonl").stat().st_mtime_ns
    ensure_problems("smoke", smoke_runs)
    assert "using" in capsys.readouterr().out
    assert (folder / "train.jsonl").stat().st_mtime_ns == before


GOOD_CODE = {"id": "c1", "domain": "code", "prompt": "Write f.",
             "tests": [{"code": "assert f(1) == 2"}]}


@pytest.mark.parametrize("problem, message", [
    ({"id": "m1", "domain": "math", "prompt": "What is 1 + 1?"}, "'m1' is a math problem without an 'answer'"),
    ({"id": "m2", "domain": "math", "answer": "2"}, "'m2' is missing field 'prompt'"),
    ({"domain": "math", "prompt": "x", "answer": "2"}, "None is missing field 'id'"),
    ({**GOOD_CODE, "id": "c2", "tests": []}, "'c2' is a code problem with an empty"),
    ({**GOOD_CODE, "id": "c3", "tests": None}, "'c3' is a code problem with an empty or missing"),
    ({**GOOD_CODE, "id": "c4", "tests": [{"code": "f(1) == 2"}]}, "'c4', test 0: .*single assert"),
    ({**GOOD_CODE, "id": "c5", "tests": [{"code": "assert f(1) == 2"}, {"stdin": "1"}]},
     "'c5', test 1: a test holds either"),
    ({**GOOD_CODE, "id": "c6", "tests": [{"code": "assert f(1) == 2", "level": "Brutal"}]},
     "'c6', test 0: level 'Brutal'"),
    ({**GOOD_CODE, "id": "c7", "domain": "chess"}, "'c7' has domain 'chess'"),
])
def test_bad_problems_are_refused_naming_the_problem(tmp_path, problem, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD_CODE) + "\n" + json.dumps(problem) + "\n")
    with pytest.raises(ValueError, match=message):
        load_problems(path)


def test_bad_files_are_refused(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps(GOOD_CODE) + "\n{not json\n")
    with pytest.raises(ValueError, match="line 2: not valid JSON"):
        load_problems(path)
    path.write_text(json.dumps(GOOD_CODE) + "\n" + json.dumps(GOOD_CODE) + "\n")
    with pytest.raises(ValueError, match="'c1' appears twice"):
        load_problems(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_problems(tmp_path / "missing.jsonl")
    path.write_text(json.dumps(GOOD_CODE) + "\n\n")
    assert load_problems(path) == [GOOD_CODE]


# ---- code tier 1: program shapes a toy model can learn, graded by the test-difficulty procedure --

def test_tier1_families_are_graded_easy_to_hard_and_every_wrong_program_fails_a_hard_test():
    from string import Template

    from mimo_lite.tasks.difficulty import grade_problem

    problems = code_problems(families=9, variants=[1, 0], typical_tests=6, seed=0)
    assert {p["tier"] for p in problems} == {1} and len(problems) == 5
    for p in problems:
        [family] = [f for f in code_families() if f["family"] == p["family"]]
        for alternative in family["alternatives"]:            # the teacher's other programs
            program = Template(alternative).substitute(p["variant"])
            assert all(r.passed for r in run_tests(program, p["tests"])), (p["id"], program)
        grade = grade_problem(p, code_solutions(p))
        levels = grade["levels"]
        assert set(levels) == {"Easy", "Medium", "Hard"}, (p["id"], levels)
        for name, passed in zip(grade["solutions"], grade["passed"]):
            if name == "reference":
                assert all(passed)
            else:                                             # plausible, and caught by a hard test
                assert any(not ok and level == "Hard" for ok, level in zip(passed, levels)), name
                assert any(passed), name


def test_tier1_variants_differ_in_a_constant_that_no_16_gram_misses():
    from mimo_lite.tasks.decontamination import ngram_overlap

    problems = code_problems(families=9, variants=[6, 0], typical_tests=1, seed=0)
    for family in {p["family"] for p in problems}:
        prompts = [p["prompt"] for p in problems if p["family"] == family]
        assert len(set(prompts)) == 6
        # decontamination keeps the other constants of a held-out problem's family
        assert ngram_overlap(prompts[1:], prompts[:1], 16) == [0.0] * 5, family


def test_tier1_problems_spread_over_the_range_and_every_variant_is_available():
    some = code_problems(9, [20, 0], 1, seed=0)
    every = code_problems(9, [20, 0], 1, seed=0, every_variant=True)
    assert {p["id"] for p in some} < {p["id"] for p in every}
    [family] = [f for f in code_families() if f["family"] == "count_div"]
    assert len([p for p in every if p["family"] == "count_div"]) == len(family_variants(family))
    constants = sorted(p["variant"]["k"] for p in some if p["family"] == "count_div")
    assert len(constants) == 20 and constants[-1] - constants[0] > 50


def test_heldout_texts_cover_the_heldout_split_without_the_sandbox(smoke_problems):
    from mimo_lite.tasks.problems import heldout_texts

    texts = set(heldout_texts("smoke"))
    heldout = load_problems(smoke_problems / "heldout.jsonl")
    assert {p["prompt"] for p in heldout} <= texts
    assert {p["solution"] for p in heldout if p["domain"] == "code"} <= texts


def test_more_tier2_variants_are_graded_like_the_others_and_only_where_asked():
    from mimo_lite.tasks.difficulty import grade_problem

    plain = code_problems(families=9, variants=[0, 20], typical_tests=4, seed=0)
    more = code_problems(families=9, variants=[0, 20], typical_tests=4, seed=0, more_variants=True)
    extended = {f["family"] for f in code_families() if f.get("more_variants")}
    assert len(extended) >= 5
    assert {p["id"] for p in plain} < {p["id"] for p in more}
    for family in extended:                      # the family's own variants keep their ids and order
        own = [p for p in plain if p["family"] == family]
        assert [p["id"] for p in own] == [p["id"] for p in more if p["family"] == family][:len(own)]
    plain_ids = {p["id"] for p in plain}
    for p in (p for p in more if p["id"] not in plain_ids):
        grade = grade_problem(p, code_solutions(p))
        for name, passed in zip(grade["solutions"], grade["passed"]):
            if name == "reference":
                assert all(passed), p["id"]
            else:                                # every wrong program fails at least one test
                assert not all(passed), (p["id"], name)


def test_gpu_heldout_tier2_problems_have_siblings_of_their_program_to_learn_from():
    from mimo_lite.tasks.problems import generated_splits

    train, heldout = generated_splits("gpu")
    extended = {f["family"] for f in code_families() if f.get("more_variants")}
    held = [p for p in heldout if p["domain"] == "code" and p["tier"] == 2]
    assert sum(p["family"] in extended for p in held) >= 0.8 * len(held)
    for p in held:
        if p["family"] in extended:          # other constants of its program are in the training split
            siblings = [q for q in train if q.get("family") == p["family"]]
            assert len(siblings) >= 5, (p["id"], len(siblings))
