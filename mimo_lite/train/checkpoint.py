"""Training checkpoints that survive a kill at any instant.

A checkpoint is a folder `step-00000120/` holding the model (safetensors), the optimiser, the
trainer state (tokens seen, stage, data position, RNG states) and a MANIFEST.json listing every
file's size and SHA-256. It is written under a temporary name and renamed into place only when
complete (a rename is atomic), and the manifest is checked on load: a half-written or corrupted
folder is reported in one sentence and skipped, and the newest good one is used instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from . import parallel

MANIFEST = "MANIFEST.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": np.random.get_state()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def save(folder: Path, step: int, model, optimizer, state: dict, keep: int = 2) -> Path:
    """Write checkpoint `step` under `folder` atomically; keep the newest `keep` checkpoints.

    Every rank must call it (sharded weights are gathered); rank 0 writes.
    """
    folder = Path(folder)
    final = folder / f"step-{step:08d}"
    weights = parallel.full_state_dict(model)
    optim = parallel.optimizer_state(model, optimizer)
    if parallel.rank() != 0:
        parallel.barrier()
        return final
    tmp = folder / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, tmp / "model.safetensors")
    torch.save(optim, tmp / "optimizer.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **state}, indent=2))
    files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
    (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=2))
    for p in tmp.iterdir():                      # the data must be on disk before the rename
        with open(p, "rb") as f:
            os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoints(folder)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    parallel.barrier()
    return final


def checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders under `folder`, newest first (temporary folders are not checkpoints)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("step-*") if p.is_dir()), reverse=True)


def problem(path: Path) -> str | None:
    """Why `path` is not a usable checkpoint, or None when its manifest checks out."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return f"checkpoint {path} has no readable {MANIFEST} (it was not completely written)"
    for name, expect in manifest["files"].items():
        p = path / name
        if not p.exists():
            return f"checkpoint {path} is missing {name}"
        if p.stat().st_size != expect["bytes"] or _sha256(p) != expect["sha256"]:
            return f"checkpoint {path} has a corrupted {name} (size or SHA-256 differs from its manifest)"
    return None


def latest_good(folder: Path) -> Path | None:
    """The newest checkpoint whose manifest checks out; each rejected one is reported."""
    for path in checkpoints(folder):
        reason = problem(path)
        if reason is None:
            return path
        warnings.warn(f"{reason}; falling back to the previous checkpoint.", stacklevel=2)
    return None


def load(path: Path, model, optimizer) -> dict:
    """Restore model, optimiser and RNG from a checked checkpoint; returns the trainer state."""
    reason = problem(path)
    if reason:
        raise ValueError(f"{reason}: delete it or resume from an earlier one.")
    parallel.load_full_state_dict(model, load_file(path / "model.safetensors"))
    parallel.load_optimizer_state(model, optimizer, torch.load(path / "optimizer.pt", weights_only=False))
    set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "trainer_state.json").read_text())
