"""Notebooks in order: a notebook builds only its own artifacts and those of notebooks before it.

OWNERS maps each folder under `runs/<profile>/` to the first notebook allowed to create it. After
notebook N runs, every folder present must belong to a notebook ≤ N; a folder of a later notebook
means notebook N built something a learner meets only later.
"""

from __future__ import annotations

from pathlib import Path

OWNERS = {
    "corpus": "01",            # documents, the build report, and corpus/packed/ (the stage mixtures)
    "tokenizer": "02",
    "pretrain": "04",          # the three-stage run: checkpoints, metrics
    "pretrain_control": "04",  # the stage-1 control run
    "base": "04",
    "problems": "06",          # notebook 07 teaches it, but 06 decontaminates its SFT data against it
    "sft": "06",
    "grpo": "08",              # the GRPO runs' checkpoints and metrics
    "rl": "08",
    "rl_zero": "08",
    "ablations": "08",         # the short GRPO runs of the paper's ablations
}
NOT_ARTIFACTS = {"notebooks"}  # executed copies, figures and records of every notebook


def artifacts_built_too_early(profile_dir: Path, notebook: str) -> list[str]:
    """The folders in `profile_dir` that `notebook` (e.g. "05") should not have seen yet, explained."""
    problems = []
    for folder in sorted(Path(profile_dir).iterdir()):
        name = folder.name
        if not folder.is_dir() or name in NOT_ARTIFACTS or name.startswith("."):   # .x.building-<pid>
            continue
        owner = OWNERS.get(name)
        if owner is None:
            problems.append(f"{name}/ is in no notebook's list: add it to OWNERS in {Path(__file__).name}")
        elif owner > notebook:
            problems.append(f"{name}/ belongs to notebook {owner}, but it exists after notebook {notebook}")
    return problems
