"""The run scaffold: everything around a training step, shared by pre-training, SFT and GRPO.

Each trainer keeps only its data and its step; `Run` holds the rest, the same for all three
(torchtitan's split between `train_step` and the run machinery):

- device and precision: fp32 master weights, the forward under autocast to the profile's dtype
  (bfloat16 on a GPU; nothing changes in float32), and `torch.compile` when the profile asks
  (with the inductor options of `compile_options`);
- FSDP2 under torchrun (`parallel.shard`: one unit per decoder block and MTP layer, computing
  in bf16 when the profile's dtype is bfloat16), a no-op in one process; only rank 0 writes
  metrics, shows progress and talks to the tracker;
- activation checkpointing when the profile asks (`MiMoModel.call_block`): each decoder block
  and MTP layer keeps only its inputs and runs again in the backward;
- AdamW over the trainable parameters, matrices decayed, norms and biases not;
- exact resume: the newest good checkpoint restores model, optimiser, RNG and the trainer's
  state (a dataclass with a `step` field); checkpoints are atomic (`checkpoint.py`), and sharded
  under torchrun: each rank writes its own shards, and a run resumes at another world size;
- one metrics file, `metrics.jsonl`, cut back to the resumed step so a resumed run writes
  exactly the lines of a run that never stopped; an optional tracker (TensorBoard or wandb)
  behind one switch; a progress bar.

    run = Run(folder, model, lr=..., weight_decay=..., betas=..., device=..., dtype=...)
    state = run.resume(MyState())
    while not done:
        with run.autocast:
            loss = run.forward(batch, ...).loss
        loss.backward()
        run.optimizer_step(grad_clip)
        state.step += 1
        run.log(state.step, loss=...)
        run.checkpoint(state)
    run.close(state)
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import torch
import tqdm.auto
import tqdm.std

from ..artifacts import share_cores
from ..model import MiMoModel
from ..profile import TRACKERS
from . import checkpoint, parallel

BATCH_ENV = "MIMO_LITE_BATCH"   # set by `mimo-lite notebooks`: the notebooks run unattended


class Run:
    def __init__(self, folder: Path, model, *, lr: float, weight_decay: float = 0.0,
                 betas=(0.9, 0.95), device=None, dtype=torch.float32, compile: bool = False,
                 log_every: int = 1, checkpoint_every: int = 0, tracker: str = "none",
                 progress: bool = True, activation_checkpointing: bool = False,
                 async_checkpoints: bool = False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        parallel.init()
        device = torch.device(device) if device is not None else next(model.parameters()).device
        for module in model.modules():                    # the model, or the one a LoRA wrapper holds
            if isinstance(module, MiMoModel):
                module.activation_checkpointing = activation_checkpointing
        self.model = parallel.shard(model.to(device), dtype)
        self.device, self.dtype = device, dtype
        self.forward = torch.compile(self.model, options=compile_options()) if compile else self.model
        self.autocast = torch.autocast(device_type=device.type, dtype=dtype,
                                       enabled=dtype != torch.float32)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = adamw(self.model, lr, weight_decay, betas, fused=device.type == "cuda")
        self.log_every, self.checkpoint_every = log_every, checkpoint_every
        self.async_checkpoints = async_checkpoints        # under torchrun: shards written in the background
        self.main = parallel.rank() == 0
        self.metrics_path = self.folder / "metrics.jsonl"
        self.tracker = open_tracker(tracker, self.folder) if self.main else None
        self.show_progress = progress and self.main
        self.bar = None
        self._window = (0, time.perf_counter())

    # -- resume and checkpoints ---------------------------------------------------------------
    def resume(self, state):
        """`state` (a fresh dataclass with a `step` field), or the one the newest good checkpoint
        holds, with model, optimiser and RNG restored; metric lines after it are dropped."""
        last = checkpoint.latest_good(self.folder / "checkpoints")
        if last is not None:
            state = replace(state, **checkpoint.load(last, self.model, self.optimizer))
        if self.main:
            lines = [m for m in read_metrics(self.metrics_path) if m["step"] <= state.step]
            tmp = self.metrics_path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(m) + "\n" for m in lines))
            tmp.replace(self.metrics_path)
        return state

    def save(self, state, folder: str = "checkpoints", keep: int = 2) -> Path:
        """A checkpoint of model, optimiser, RNG and `state` under folder/ (every rank calls it;
        under torchrun each writes its own shards)."""
        rest = {k: v for k, v in asdict(state).items() if k != "step"}
        return checkpoint.save(self.folder / folder, state.step, self.model, self.optimizer,
                               rest, keep=keep, asynchronous=self.async_checkpoints)

    def checkpoint(self, state, force: bool = False) -> None:
        """Save every `checkpoint_every` steps (and when `force`, e.g. at the end)."""
        if force or (self.checkpoint_every and state.step % self.checkpoint_every == 0):
            self.save(state)

    # -- the optimiser step ---------------------------------------------------------------------
    def optimizer_step(self, grad_clip: float) -> float:
        """Clip the gradients' global norm, step, zero the gradients; returns the norm before clipping.
        In a worker of a notebook's batch of runs, it first takes the cores the others leave idle."""
        share_cores()
        norm = torch.nn.utils.clip_grad_norm_(self.params, grad_clip)
        if hasattr(norm, "full_tensor"):                  # sharded (FSDP2): the global norm
            norm = norm.full_tensor()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm.item()

    # -- what the run reports -------------------------------------------------------------------
    def progress(self, total: float, initial: float = 0, unit: str = "it", desc: str = ""):
        # a person in Jupyter gets tqdm's widget; `mimo-lite notebooks` (papermill) gets the text
        # bar, whose saved output ends at 100% where a widget's saved copy shows its first state
        bar = tqdm.std.tqdm if os.environ.get(BATCH_ENV) else tqdm.auto.tqdm
        self.bar = bar(total=total, initial=initial, unit=unit, unit_scale=unit != "it",
                        desc=desc, disable=not self.show_progress)
        return self.bar

    def due(self, step: int, last: bool = False) -> bool:
        """Whether step `step` writes a metrics line (every `log_every` steps, and the last one)."""
        return last or step % self.log_every == 0

    def count(self, tokens: int) -> None:
        """Tokens processed since the last metrics line (for tokens_per_s)."""
        self._window = (self._window[0] + tokens, self._window[1])

    def log(self, step: int, **metrics) -> dict:
        """Append one line to metrics.jsonl (rank 0) and the tracker; adds tokens_per_s when counted."""
        tokens, since = self._window
        if tokens:
            metrics["tokens_per_s"] = tokens / max(time.perf_counter() - since, 1e-9)
        self._window = (0, time.perf_counter())
        line = {"step": step, **metrics}
        if self.main:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(line) + "\n")
            if self.tracker is not None:
                self.tracker.log(line)
        return line

    def close(self, state=None) -> None:
        """Close the bar and the tracker; with `state`, write the final checkpoint."""
        if state is not None:
            self.checkpoint(state, force=True)
        checkpoint.finish()                               # an asynchronous save, sealed
        if self.bar is not None:
            self.bar.close()
        if self.tracker is not None:
            self.tracker.close()


def compile_options() -> dict:
    """Inductor's options for the trainers' `torch.compile`: the defaults, two passes off.

    Both passes trip over the MTP loss: the main stack's tensors have B·T rows and the MTP
    layer's B·(T-1) (the last position has no next token to embed), and inductor asserts on the
    two sizes in one candidate fusion instead of declining it. Measured on one H200 with torch 2.11:

    - mix-order reduction (torch ≥ 2.10) fuses a backward's reductions along rows with those
      along columns, as in an RMSNorm backward. At one sequence per micro-batch, where the batch
      warm-up starts (B = 1, T = 1024), the first backward stopped with "AssertionError: 1023 v.s.
      1024"; it compiles without the pass (32 sequences compile either way).
    - the tiling analysis for memory coalescing (torch ≥ 2.8) asserts that the split sizes of a
      fused kernel agree. Once the batch warm-up and stage 3's longer context have made B and T
      symbolic, B·T and B·(T-1) are different expressions, and pre-training stopped at stage 3's
      first step; it compiles without the pass, and inductor keeps its default tilings (its
      speed cost is not measured in a paired run; benchmarks/RESULTS.md, seventh lease).
    """
    from torch._inductor import config

    wanted = {"mix_order_reduction": False, "coalesce_tiling_analysis": False}
    return {f"triton.{name}": value for name, value in wanted.items() if hasattr(config.triton, name)}


def adamw(model, lr: float, weight_decay: float, betas, fused: bool = False) -> torch.optim.AdamW:
    """AdamW over the trainable parameters: weight decay on matrices, none on norms and biases."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=tuple(betas),
                             fused=fused)


def read_metrics(path: Path) -> list[dict]:
    """The lines of a metrics.jsonl (empty when the run has written none)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class _TensorBoard:
    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(folder / "tensorboard"))

    def log(self, line: dict) -> None:
        for key, value in line.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                self.writer.add_scalar(key, value, line["step"])

    def close(self) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, folder: Path):
        import wandb
        self.run = wandb.init(project="mimo-lite", name=folder.name, dir=str(folder))

    def log(self, line: dict) -> None:
        self.run.log({k: v for k, v in line.items() if isinstance(v, (int, float))}, step=line["step"])

    def close(self) -> None:
        self.run.finish()


def open_tracker(kind: str, folder: Path):
    """The experiment tracker the profile names, or None ("none", or its package is missing)."""
    if kind not in TRACKERS:
        raise ValueError(f"tracker must be one of {TRACKERS}, got {kind!r}.")
    if kind == "none":
        return None
    try:
        return (_TensorBoard if kind == "tensorboard" else _Wandb)(Path(folder))
    except ImportError:
        package = "tensorboard" if kind == "tensorboard" else "wandb"
        warnings.warn(f"tracker {kind!r} needs the {package} package (pip install {package}); "
                      f"this run logs to metrics.jsonl only.", stacklevel=2)
        return None
