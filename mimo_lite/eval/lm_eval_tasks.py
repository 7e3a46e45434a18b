"""The kit's suites as lm-evaluation-harness tasks, so the standard harness can score a checkpoint.

`export_lm_eval_tasks(problems, folder)` writes, per domain present:

    <name>_<domain>.yaml     a task: the problems file, the prompt, greedy generation, one metric
    <name>_<domain>.jsonl    the problems, one document each (the problem kept whole as JSON)
    mimo_lite_scoring.py     `process_results`: the kit's own verdict (Math-Verify for math, the
                             sandbox for code), so the harness and `evaluate` judge alike

and then, with lm-eval and the kit installed in one environment:

    mimo-lite export-lm-eval --suite heldout --out runs/toy/lm_eval_tasks
    lm_eval --model hf --model_args pretrained=runs/toy/rl,trust_remote_code=True \\
            --apply_chat_template --include_path runs/toy/lm_eval_tasks \\
            --tasks mimo_lite_heldout_math,mimo_lite_heldout_code --device cpu

`trust_remote_code=True` is what lets a fresh `lm_eval` process build the model: it reads the
config before it imports the scoring module, and transformers does not ship the model type
"mimo". Every kit checkpoint names its classes in config.json's `auto_map` and carries
`modeling_mimo.py`, which imports them from the installed kit (`MiMoConfig.save_pretrained`);
without the flag transformers stops with "contains custom code ... pass `trust_remote_code=True`".
A checkpoint saved by an older kit lacks both: `MiMoConfig.from_pretrained(d).save_pretrained(d)`
adds them. `--apply_chat_template` asks each prompt as a user turn, as `evaluate` does. Run here
with lm-eval 0.4.13 on a CPU, on a smoke-size random checkpoint (tests/test_eval.py); never on a
trained run.

lm-eval is not a dependency of the kit; the files are plain YAML and Python that its task loader
reads (`!function` names a function of a module beside the YAML). The scoring module imports
`mimo_lite`, so run the harness where the kit is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..chat import IM_END

SCORING_MODULE = "mimo_lite_scoring"
SCORING = '''"""Scoring for the mimo-lite tasks: the kit's own verdict on one generated reply."""

import json

from mimo_lite.tasks.rewards import score


def process_results(doc, results):
    """1.0 when the reply is right (math: Math-Verify on its boxed answer; code: every test of
    the problem passes in the kit's sandbox), else 0.0."""
    problem = json.loads(doc["problem"])
    return {"correct": float(score(problem, results[0], "vanilla") == 1.0)}
'''


class _Function(str):
    """A `!function module.name` reference, as lm-eval's YAML loader reads it."""


def _represent_function(dumper, value):
    return dumper.represent_scalar("!function", str(value))


yaml.SafeDumper.add_representer(_Function, _represent_function)


def export_lm_eval_tasks(problems: list[dict], folder: str | Path, name: str = "mimo_lite_heldout",
                         max_gen_toks: int = 512) -> list[Path]:
    """Write one lm-eval task per domain of `problems` into `folder`; returns the YAML paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{SCORING_MODULE}.py").write_text(SCORING)
    written = []
    for domain in sorted({p["domain"] for p in problems}):
        task = f"{name}_{domain}"
        data = folder / f"{task}.jsonl"
        data.write_text("".join(json.dumps({"id": p["id"], "prompt": p["prompt"],
                                            "problem": json.dumps(p)}) + "\n"
                                for p in problems if p["domain"] == domain))
        config = {
            "task": task,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
            "test_split": "test",
            "output_type": "generate_until",
            "doc_to_text": "{{prompt}}",
            "doc_to_target": "",
            "process_results": _Function(f"{SCORING_MODULE}.process_results"),
            "generation_kwargs": {"until": [IM_END], "do_sample": False,
                                  "max_gen_toks": max_gen_toks},
            "metric_list": [{"metric": "correct", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0},
        }
        path = folder / f"{task}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        written.append(path)
    return written
