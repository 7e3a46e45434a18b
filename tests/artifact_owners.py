"""Notebooks in order: a notebook builds only its own artifacts and those of notebooks before it.

OWNERS maps each folder under `runs/<profile>/` to the first notebook allowed to create it. Every
folder that running notebook N creates must belong to a notebook ≤ N; a folder of a later notebook
means notebook N built something a learner meets only later. A notebook's second part ("05b",
"08b") comes after its first and before the next number, as strings compare. (Folders that were there before the
notebook ran, from other tests sharing the runs root, are not the notebook's doing.)
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
    "ablations": "08",         # the short GRPO runs of the paper's ablations: 08 queues them beside its
    #                            main runs, so that both cores stay busy; 08b reads them
    "seamless": "09",          # the GRPO runs under the naive and the seamless rollout scheduler
    "eval": "10",              # the four models' held-out evaluations (<model>-<suite>/)
    "report": "10",            # `mimo-lite report`: report.md and its figures
}
# Notebook 11 owns no folder: it reads configs and builds nothing.
NOT_ARTIFACTS = {"notebooks"}  # executed copies, figures and records of every notebook


def artifact_folders(profile_dir: Path) -> set[str]:
    """The artifact folders now in `profile_dir` (none if it does not exist yet)."""
    if not Path(profile_dir).is_dir():
        return set()
    return {f.name for f in Path(profile_dir).iterdir()
            if f.is_dir() and f.name not in NOT_ARTIFACTS and not f.name.startswith(".")}   # .x.building-<pid>


def artifacts_built_too_early(profile_dir: Path, notebook: str, before: set[str] = frozenset()) -> list[str]:
    """The folders in `profile_dir`, other than those `before` it ran, that `notebook` (e.g. "05")
    should not have built, explained."""
    problems = []
    for name in sorted(artifact_folders(profile_dir) - set(before)):
        owner = OWNERS.get(name)
        if owner is None:
            problems.append(f"{name}/ is in no notebook's list: add it to OWNERS in {Path(__file__).name}")
        elif owner > notebook:
            problems.append(f"{name}/ belongs to notebook {owner}, but notebook {notebook} built it")
    return problems
