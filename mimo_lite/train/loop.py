"""The pre-training loop: three stages, the MTP objective, the paper's schedules, exact resume.

One function, `train`, serves notebook 04 and `mimo-lite pretrain`. It sees the data only as
packed token sequences (`streams(stage, position)` returns something with `.take(n)` →
LongTensor (n, seq_len)), so the same loop runs on the kit's corpus and on a test's toy stream.
Under torchrun the model's decoder blocks can be sharded with FSDP2 (`parallel.shard`) before the
optimiser is built; nothing below depends on the world size.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch
from tqdm.auto import tqdm

from . import checkpoint, parallel
from ..profile import PretrainSection


class TokenStream(Protocol):
    position: int                                   # sequences taken so far (the resume point)

    def take(self, n: int) -> torch.Tensor: ...     # (n, seq_len) token ids


@dataclass
class State:
    step: int = 0
    tokens: int = 0
    stage: int = 1
    positions: dict = field(default_factory=lambda: {"1": 0, "2": 0, "3": 0})
    heldout: dict = field(default_factory=dict)     # "stage1" → {domain: loss}


def train(model, cfg: PretrainSection, streams: Callable[[int, int], TokenStream],
          seq_lens: dict[int, int], out_dir: Path, heldout: dict[str, torch.Tensor] | None = None,
          device="cpu", dtype=torch.float32, max_steps: int | None = None,
          curriculum: bool = True, progress: bool = True) -> State:
    """Pre-train `model` in place; metrics go to out_dir/metrics.jsonl, checkpoints to out_dir/checkpoints/.

    Resumes from the newest good checkpoint in out_dir. `max_steps` stops early (tests, demos).
    Each stage's end is also kept in out_dir/stage_ends/. With `curriculum=False` the LR, batch
    and MTP schedules are unchanged but the data, context and RoPE base stay stage 1's: the
    control run that shows what stages 2–3 add.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    schedule = cfg.schedule()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]   # norms and biases
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.peak_lr, betas=tuple(cfg.betas),
                                  fused=torch.device(device).type == "cuda")
    state = State()
    ckpt_dir = out_dir / "checkpoints"
    last = checkpoint.latest_good(ckpt_dir)
    if last is not None:
        state = State(**{k: v for k, v in checkpoint.load(last, model, optimizer).items() if k != "step"},
                      step=int(last.name.split("-")[1]))
    metrics_path = out_dir / "metrics.jsonl"
    if parallel.rank() == 0:
        _truncate_metrics(metrics_path, state.step)

    forward = torch.compile(model) if cfg.compile else model
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=dtype,
                              enabled=dtype != torch.float32)
    first = state.stage if curriculum else 1
    stream = streams(first, state.positions[str(first)])
    bar = tqdm(total=cfg.total_tokens, initial=state.tokens, unit="tok", unit_scale=True,
               disable=not progress or parallel.rank() != 0, desc=f"stage {state.stage}")
    window_tokens, window_start = 0, time.perf_counter()
    model.train()
    while state.tokens < cfg.total_tokens and (max_steps is None or state.step < max_steps):
        stage = schedule.stage(state.tokens)
        if stage != state.stage:                                     # a stage boundary
            state.heldout[f"stage{state.stage}"] = evaluate(model, heldout, cfg.micro_batch, device)
            checkpoint.save(out_dir / "stage_ends", state.step, model, optimizer,
                            {k: v for k, v in asdict(state).items() if k != "step"}, keep=3)
            state.stage = stage
            if curriculum:
                stream = streams(stage, state.positions[str(stage)])
            bar.set_description(f"stage {stage}")
        data_stage = stage if curriculum else 1
        set_rope_theta(model, cfg.stage3_rope_theta if data_stage == 3 else 10_000.0)
        seq_len = seq_lens[data_stage]
        # Batch warm-up in sequences; stage 3's longer sequences keep tokens per step constant.
        full = max(1, cfg.batch_tokens // seq_len)
        world = parallel.world_size()                                 # every rank gets as many rows
        n_seq = world * math.ceil(max(1, round(schedule.batch_fraction(state.tokens) * full)) / world)
        lr, mtp_weight = schedule.lr(state.tokens), schedule.mtp_weight(state.tokens)
        for group in optimizer.param_groups:
            group["lr"] = lr

        batch = stream.take(n_seq)                                    # (n_seq, seq_len), same on every rank
        state.positions[str(data_stage)] = stream.position
        tokens_in_batch = batch.numel()
        batch = batch[parallel.rank()::parallel.world_size()].to(device)   # this rank's rows
        n_local = batch.shape[0]
        totals = torch.zeros(4)                                       # loss, main, mtp, mtp correct
        mtp_count = 0
        for micro in batch.split(cfg.micro_batch):
            with autocast:
                out = forward(micro, labels=micro, mtp_loss_weight=mtp_weight)
            share = micro.shape[0] / n_local                          # mean over this rank's rows
            (out.loss * share).backward()
            with torch.no_grad():
                hit, count = mtp_top1(out.mtp_logits, micro)
            totals += torch.tensor([out.loss.item() * share, out.main_loss.item() * share,
                                    (out.mtp_loss.item() if out.mtp_loss is not None else 0.0) * share,
                                    hit])
            mtp_count += count
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if hasattr(grad_norm, "full_tensor"):                         # sharded (FSDP2): the global norm
            grad_norm = grad_norm.full_tensor()
        grad_norm = grad_norm.item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.tokens += tokens_in_batch
        window_tokens += tokens_in_batch
        bar.update(tokens_in_batch)

        if (state.step % cfg.log_every == 0 or state.tokens >= cfg.total_tokens) and parallel.rank() == 0:
            elapsed = time.perf_counter() - window_start
            line = dict(step=state.step, tokens=state.tokens, stage=stage, loss=totals[0].item(),
                        main_loss=totals[1].item(), mtp_loss=totals[2].item(),
                        mtp_top1=totals[3].item() / max(mtp_count, 1), lr=lr, mtp_weight=mtp_weight,
                        batch_sequences=n_seq, seq_len=seq_len, grad_norm=grad_norm,
                        tokens_per_s=window_tokens / max(elapsed, 1e-9))
            with open(metrics_path, "a") as f:
                f.write(json.dumps(line) + "\n")
            bar.set_postfix(loss=f"{line['loss']:.3f}", mtp_top1=f"{line['mtp_top1']:.2f}")
            window_tokens, window_start = 0, time.perf_counter()
        if state.step % cfg.checkpoint_every == 0:
            checkpoint.save(ckpt_dir, state.step, model, optimizer,
                            {k: v for k, v in asdict(state).items() if k != "step"})
    bar.close()
    if state.tokens >= cfg.total_tokens and f"stage{state.stage}" not in state.heldout:
        state.heldout[f"stage{state.stage}"] = evaluate(model, heldout, cfg.micro_batch, device)
        checkpoint.save(ckpt_dir, state.step, model, optimizer,
                        {k: v for k, v in asdict(state).items() if k != "step"})
    return state


def mtp_top1(mtp_logits, ids) -> tuple[float, int]:
    """How often the first MTP layer's top-1 guess equals token t+2, and over how many positions."""
    if not mtp_logits:
        return 0.0, 0
    guess = mtp_logits[0][:, :-1].argmax(-1)            # position t predicts ids[:, t+2]
    return (guess == ids[:, 2:]).sum().item(), guess.numel()


@torch.no_grad()
def evaluate(model, heldout: dict[str, torch.Tensor] | None, micro_batch: int, device) -> dict:
    """Mean main-model loss per domain on held-out packed sequences."""
    if not heldout:
        return {}
    model.eval()
    losses = {}
    for domain, seqs in heldout.items():
        parts = [model(m.to(device), labels=m.to(device), return_mtp=False).main_loss.item() * len(m)
                 for m in seqs.split(micro_batch)]
        losses[domain] = sum(parts) / len(seqs)
    model.train()
    return losses


def set_rope_theta(model, theta: float) -> None:
    """Context extension, MiMo style: raise the RoPE base (the config is what the model reads)."""
    config = getattr(model, "config", None) or model.module.config
    config.rope_parameters["rope_theta"] = float(theta)


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines written after the checkpoint (they will be recomputed)."""
    lines = [m for m in read_metrics(path) if m["step"] <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(m) + "\n" for m in lines))
    tmp.replace(path)
