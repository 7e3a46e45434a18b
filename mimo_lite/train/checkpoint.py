"""Training checkpoints that survive a kill at any instant.

A checkpoint is a folder `step-00000120/` holding the model, the optimiser, the trainer state
(tokens seen, stage, data position), the RNG states and a MANIFEST.json listing every file's size
and SHA-256. It is written under a temporary name and renamed into place only when complete (a
rename is atomic), and the manifest is checked on load: a half-written or corrupted folder is
reported in one sentence and skipped, and the newest good one is used instead.

Two layouts, one folder scheme:

- one process (the notebooks): `model.safetensors`, `optimizer.pt`, `rng.pt`;
- sharded, under torchrun with more than one process: a `torch.distributed.checkpoint` (DCP)
  folder, in which every rank writes its own shards of model and optimiser (`__<rank>_0.distcp`,
  plus `.metadata`) and its own RNG state (`rng-<rank>.pt`); the ranks hash their share of the
  files and rank 0 writes the manifest, the completion marker, only once every rank has finished.
  DCP reshards on load, so a run saved by 8 processes resumes on 4, on 2 or in one. With
  `asynchronous=True` the shards are copied to host memory and written by a background thread
  while training goes on; the folder is sealed (hashed, manifest, renamed into place) when the
  next checkpoint starts or `finish()` is called. Until then it is not a checkpoint: a run
  killed meanwhile resumes from the one before.

`export_hf` turns either layout into the Hugging Face layout that `from_pretrained` loads.
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
SHARD_BYTES = 5 * 2**30          # the exported safetensors files hold at most this much each


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def rng_state() -> dict:
    """This process's random number generators (and this rank's GPU's, when there is one)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


_pending: list = []      # an asynchronous sharded save still being written: (future, sealing args)


def save(folder: Path, step: int, model, optimizer, state: dict, keep: int = 2,
         asynchronous: bool = False) -> Path:
    """Write checkpoint `step` under `folder` atomically; keep the newest `keep` checkpoints.

    Every rank must call it: with more than one process each writes its own shards (DCP), in the
    background when `asynchronous` (in one process the save is always synchronous).
    """
    finish()
    folder = Path(folder)
    final = folder / f"step-{step:08d}"
    if parallel.world_size() > 1:
        return _save_sharded(folder, final, step, model, optimizer, state, keep, asynchronous)
    tmp = folder / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
              tmp / "model.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **state}, indent=2))
    files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
    (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=2))
    for p in tmp.iterdir():                      # the data must be on disk before the rename
        _fsync(p)
    _publish(tmp, final, folder, keep)
    return final


def finish() -> None:
    """Wait for an asynchronous save still being written, then seal it (every rank calls it)."""
    while _pending:
        future, args = _pending.pop()
        future.result()
        _seal(*args)


def _save_sharded(folder: Path, final: Path, step: int, model, optimizer, state: dict,
                  keep: int, asynchronous: bool = False) -> Path:
    """The DCP layout: every rank writes its shards, then rank 0 seals the folder."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    rank, world = parallel.rank(), parallel.world_size()
    tmp = folder / f".tmp-step-{step:08d}"      # one name for all ranks (a shared file system)
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)  # what a killed attempt left
        tmp.mkdir(parents=True)
    parallel.barrier()
    weights, optim = get_state_dict(model, optimizer)          # this rank's shards, not copies
    shards = {"model": weights, "optimizer": optim}
    if asynchronous:    # returns once the shards are copied to host memory; a thread writes them,
        # talking to the other ranks over a group of its own (never the training's collectives)
        future = dcp.async_save(shards, checkpoint_id=tmp, process_group=parallel.side_group())
    else:
        dcp.save(shards, checkpoint_id=tmp)                    # returns once all ranks wrote
    torch.save(rng_state(), tmp / f"rng-{rank}.pt")
    _fsync(tmp / f"rng-{rank}.pt")
    if rank == 0:
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **state}, indent=2))
        model.config.to_json_file(tmp / "config.json")      # what export_hf builds the model from
        _fsync(tmp / "trainer_state.json")
        _fsync(tmp / "config.json")
    if asynchronous:
        _pending.append((future, (folder, tmp, final, step, keep)))
    else:
        _seal(folder, tmp, final, step, keep)
    return final


def _seal(folder: Path, tmp: Path, final: Path, step: int, keep: int) -> None:
    """Once every rank has written its files: each hashes its share, rank 0 writes the manifest
    and renames the folder into place."""
    rank, world = parallel.rank(), parallel.world_size()
    parallel.barrier()
    names = sorted(p.name for p in tmp.iterdir())
    mine = {name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
            for name in names[rank::world]}     # each rank hashes its share of the files
    files = {k: v for part in parallel.gather(mine) for k, v in part.items()}
    if rank == 0:                               # every rank has finished: seal it
        (tmp / MANIFEST).write_text(json.dumps({"step": step, "world_size": world,
                                                "files": dict(sorted(files.items()))}, indent=2))
        _fsync(tmp / MANIFEST)
        _publish(tmp, final, folder, keep)
    parallel.barrier()


def _publish(tmp: Path, final: Path, folder: Path, keep: int) -> None:
    """Rename the finished folder into place, then drop all but the newest `keep`."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoints(folder)[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders under `folder`, newest first (temporary folders are not checkpoints)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("step-*") if p.is_dir()), reverse=True)


def is_sharded(path: Path) -> bool:
    """Whether checkpoint `path` has the DCP layout (written by more than one process)."""
    return (Path(path) / ".metadata").exists()


def problem(path: Path) -> str | None:
    """Why `path` is not a usable checkpoint, or None when its manifest checks out.

    Under torchrun every rank calls it: each hashes its share of the files and all agree.
    """
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return f"checkpoint {path} has no readable {MANIFEST} (it was not completely written)"
    names = sorted(manifest["files"])
    mine = set(names[parallel.rank()::parallel.world_size()])
    reason = None
    for name in names:
        p, expect = path / name, manifest["files"][name]
        if not p.exists():
            reason = f"checkpoint {path} is missing {name}"
        elif p.stat().st_size != expect["bytes"] or (name in mine and _sha256(p) != expect["sha256"]):
            reason = f"checkpoint {path} has a corrupted {name} (size or SHA-256 differs from its manifest)"
        if reason:
            break
    return next((r for r in parallel.gather(reason) if r), None)


def latest_good(folder: Path) -> Path | None:
    """The newest checkpoint whose manifest checks out; each rejected one is reported."""
    for path in checkpoints(folder):
        reason = problem(path)
        if reason is None:
            return path
        if parallel.rank() == 0:
            warnings.warn(f"{reason}; falling back to the previous checkpoint.", stacklevel=2)
    return None


def load(path: Path, model, optimizer) -> dict:
    """Restore model, optimiser and RNG from a checked checkpoint; returns the trainer state.

    A sharded checkpoint loads at any world size (DCP reshards); each rank restores the RNG
    state its own rank saved (none for a rank the saving run did not have). A one-process
    checkpoint loads at any world size too: every rank reads it whole.
    """
    path = Path(path)
    reason = problem(path)
    if reason:
        raise ValueError(f"{reason}: delete it or resume from an earlier one.")
    if is_sharded(path):
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        weights, optim = get_state_dict(model, optimizer)   # this rank's shards, to fill in place
        saved = {"model": weights, "optimizer": optim}
        _dcp_load(saved, path, one_process=parallel.world_size() == 1)
        set_state_dict(model, optimizer, model_state_dict=saved["model"],
                       optim_state_dict=saved["optimizer"])
        rng = path / f"rng-{parallel.rank()}.pt"
        if rng.exists():
            set_rng_state(torch.load(rng, weights_only=False))
    else:
        parallel.load_full_state_dict(model, load_file(path / "model.safetensors"))
        parallel.load_optimizer_state(model, optimizer, torch.load(path / "optimizer.pt", weights_only=False))
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "trainer_state.json").read_text())


def _dcp_load(state: dict, path: Path, one_process: bool) -> None:
    """`dcp.load` into `state` in place; `one_process`: this process alone reads what it needs
    (DCP warns that it assumes so without a process group: here that is the intent)."""
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=path, no_dist=one_process)


# ---- the model's weights, whole, from either layout -------------------------------------------

def _sharded_weights(path: Path) -> dict:
    """{DCP key: (shape, dtype)} of the model's tensors in a sharded checkpoint, in model order."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    metadata = FileSystemReader(path).read_metadata().state_dict_metadata
    return {key: (m.size, m.properties.dtype) for key, m in metadata.items()
            if key.startswith("model.") and isinstance(m, TensorStorageMetadata)}


def _read_sharded(path: Path, keys: dict) -> dict:
    """The tensors `keys` ({DCP key: (shape, dtype)}) whole, read in this one process,
    under the model's own names (the "model." that the checkpoint puts before them dropped)."""
    tensors = {key: torch.empty(shape, dtype=dtype) for key, (shape, dtype) in keys.items()}
    _dcp_load(tensors, path, one_process=True)
    return {key.removeprefix("model."): t for key, t in tensors.items()}


def model_weights(path: Path) -> dict:
    """The model's weights in checkpoint `path` (either layout), whole and on the CPU."""
    path = Path(path)
    if is_sharded(path):
        return _read_sharded(path, _sharded_weights(path))
    return load_file(path / "model.safetensors")


def export_hf(checkpoint_dir: Path, out_dir: Path) -> Path:
    """Write checkpoint `checkpoint_dir`'s model in the Hugging Face layout under `out_dir`.

    One process reads the sharded (DCP) checkpoint a few GB at a time (`SHARD_BYTES`) and
    writes each part as one safetensors file, with the index `from_pretrained` reads; weights
    and key names are the model's own (`model.layers.0.self_attn.q_proj.weight`, ...), its
    config the one the checkpoint was written with. The optimiser state is never read.

        export_hf("runs/pretrain_7b/pretrain/checkpoints/step-00001000", "runs/pretrain_7b/export")
        AutoModelForCausalLM.from_pretrained("runs/pretrain_7b/export", trust_remote_code=True)
    """
    from ..config import MiMoConfig
    from ..model import MiMoForCausalLM

    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    if not is_sharded(checkpoint_dir):
        raise ValueError(f"{checkpoint_dir} is not a sharded (DCP) checkpoint: a one-process run "
                         f"saves its model with save_pretrained instead (pretrain.ensure_base_model).")
    keys = _sharded_weights(checkpoint_dir)
    config = MiMoConfig.from_json_file(checkpoint_dir / "config.json")
    config.architectures = [MiMoForCausalLM.__name__]      # what vLLM reads to pick the model
    with torch.device("meta"):
        expected = set(MiMoForCausalLM(config).state_dict())
    if {k.removeprefix("model.") for k in keys} != expected:
        raise ValueError(f"{checkpoint_dir} does not hold the plain model's weights (LoRA adapters "
                         f"or another model?): merge the adapters before saving, then export.")
    parts, size = [{}], 0
    for key, (shape, dtype) in keys.items():     # consecutive keys, up to SHARD_BYTES per part
        nbytes = torch.Size(shape).numel() * dtype.itemsize
        if parts[-1] and size + nbytes > SHARD_BYTES:
            parts.append({})
            size = 0
        parts[-1][key] = (shape, dtype)
        size += nbytes
    out_dir.mkdir(parents=True, exist_ok=True)
    names = (["model.safetensors"] if len(parts) == 1 else
             [f"model-{i + 1:05d}-of-{len(parts):05d}.safetensors" for i in range(len(parts))])
    weight_map, total = {}, 0
    for name, part in zip(names, parts):
        tensors = _read_sharded(checkpoint_dir, part)
        save_file(tensors, out_dir / name, metadata={"format": "pt"})
        weight_map.update({k: name for k in tensors})
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        del tensors
    if len(parts) > 1:
        (out_dir / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    config.save_pretrained(out_dir)
    return out_dir
