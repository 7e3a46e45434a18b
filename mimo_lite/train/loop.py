"""The pre-training loop: three stages, the MTP objective, the paper's schedules, exact resume.

One function, `train`, serves notebook 04 and `mimo-lite pretrain`. It sees the data only as
packed token sequences (`streams(stage, position)` returns something with `.take(n)` →
LongTensor (n, seq_len)), so the same loop runs on the kit's corpus and on a test's toy stream.
The machinery around the step (precision, compile, FSDP2 under torchrun, resume, metrics,
checkpoints) is the run scaffold of `run.py`, shared with SFT and GRPO; nothing below depends on
the world size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch

from . import parallel
from .run import Run
from .schedules import Schedule
from ..data.mixture import CONTROL
from ..profile import PretrainSection


class TokenStream(Protocol):
    position: int                                   # sequences taken so far (the resume point)

    def take(self, n: int) -> torch.Tensor: ...     # (n, seq_len) token ids


@dataclass
class State:
    step: int = 0
    tokens: int = 0
    stage: int = 1
    positions: dict = field(default_factory=lambda: {"1": 0, "2": 0, "3": 0, CONTROL: 0})
    heldout: dict = field(default_factory=dict)     # "stage1" → {domain: loss}


def train(model, cfg: PretrainSection, streams: Callable[[int | str, int], TokenStream],
          seq_lens: dict[int | str, int], out_dir: Path, heldout: dict[str, torch.Tensor] | None = None,
          device="cpu", dtype=torch.float32, max_steps: int | None = None,
          curriculum: bool = True, progress: bool = True, compile: bool = False,
          tracker: str = "none", stop_at_stage: int | None = None,
          activation_checkpointing: bool = False, async_checkpoints: bool = False) -> State:
    """Pre-train `model` in place; metrics go to out_dir/metrics.jsonl, checkpoints to out_dir/checkpoints/.

    Resumes from the newest good checkpoint in out_dir. `max_steps` stops early (tests, demos).
    Each stage's end is also kept in out_dir/stage_ends/. With `curriculum=False` the LR, batch
    and MTP schedules are unchanged, but after stage 1 the data come from one flat mixture,
    `streams(CONTROL, position)` with context `seq_lens[CONTROL]`, and the RoPE base stays 10k:
    the control run that shows what the stage ordering and the context extension add.
    `stop_at_stage` stops where that stage begins, once the stage before it is saved in
    stage_ends/ and a checkpoint is written: the control branches there, and the run resumes
    from that checkpoint exactly as if it had never stopped.
    """
    schedule = Schedule.of(cfg)
    run = Run(out_dir, model, lr=cfg.peak_lr, weight_decay=cfg.weight_decay, betas=cfg.betas,
              device=device, dtype=dtype, compile=compile, log_every=cfg.log_every,
              checkpoint_every=cfg.checkpoint_every, tracker=tracker, progress=progress,
              activation_checkpointing=activation_checkpointing, async_checkpoints=async_checkpoints)
    state = run.resume(State())

    def source(stage: int) -> int | str:        # the stream a stage reads
        return stage if curriculum or stage == 1 else CONTROL

    stream = streams(source(state.stage), state.positions.get(str(source(state.stage)), 0))
    bar = run.progress(cfg.total_tokens, state.tokens, unit="tok", desc=f"stage {state.stage}")
    model.train()
    while (state.tokens < cfg.total_tokens and (max_steps is None or state.step < max_steps)
           and (stop_at_stage is None or state.stage < stop_at_stage)):
        stage = schedule.stage(state.tokens)
        if stage != state.stage:                                     # a stage boundary
            state.heldout[f"stage{state.stage}"] = evaluate(model, heldout, cfg.micro_batch, run.device)
            run.save(state, "stage_ends", keep=3)
            state.stage = stage
            if stop_at_stage is not None and stage >= stop_at_stage:
                run.save(state)
                break
            stream = streams(source(stage), state.positions.get(str(source(stage)), 0))
            bar.set_description(f"stage {stage}")
        data_stage = source(stage)
        set_rope_theta(model, cfg.stage3_rope_theta if data_stage == 3 else 10_000.0)
        seq_len = seq_lens[data_stage]
        # Batch warm-up in sequences; stage 3's longer sequences keep tokens per step constant.
        full = max(1, cfg.batch_tokens // seq_len)
        world = parallel.world_size()                                 # every rank gets as many rows
        n_seq = world * math.ceil(max(1, round(schedule.batch_fraction(state.tokens) * full)) / world)
        lr, mtp_loss_weight = schedule.lr(state.tokens), schedule.mtp_loss_weight(state.tokens)
        for group in run.optimizer.param_groups:
            group["lr"] = lr

        batch = stream.take(n_seq)                                    # (n_seq, seq_len), same on every rank
        state.positions[str(data_stage)] = stream.position
        tokens_in_batch = batch.numel()
        batch = batch[parallel.rank()::world].to(run.device)          # this rank's rows
        totals = torch.zeros(5)     # loss, main, mtp: means over this rank's rows; MTP hits, positions
        for micro in batch.split(cfg.micro_batch):
            with run.autocast:
                out = run.forward(micro, labels=micro)
                # λ·L_mtp here, not inside the forward: λ changes once in the run, and a compiled
                # forward that took it as an argument would be compiled again at the switch
                loss = out.main_loss if out.mtp_loss is None else out.main_loss + mtp_loss_weight * out.mtp_loss
            share = micro.shape[0] / batch.shape[0]                   # mean over this rank's rows
            (loss * share).backward()
            with torch.no_grad():
                hit, count = mtp_top1(out.mtp_logits, micro)
            totals += torch.tensor([loss.item() * share, out.main_loss.item() * share,
                                    (out.mtp_loss.item() if out.mtp_loss is not None else 0.0) * share,
                                    hit, count])
        totals = parallel.sum_over_ranks(totals)                      # the whole batch
        totals[:3] /= world                                           # each rank holds as many rows
        grad_norm = run.optimizer_step(cfg.grad_clip)
        state.step += 1
        state.tokens += tokens_in_batch
        run.count(tokens_in_batch)
        bar.update(tokens_in_batch)
        if run.due(state.step, last=state.tokens >= cfg.total_tokens):
            line = run.log(state.step, tokens=state.tokens, stage=stage, loss=totals[0].item(),
                           main_loss=totals[1].item(), mtp_loss=totals[2].item(),
                           mtp_top1=totals[3].item() / max(totals[4].item(), 1), lr=lr,
                           mtp_loss_weight=mtp_loss_weight, batch_sequences=n_seq, seq_len=seq_len,
                           grad_norm=grad_norm)
            bar.set_postfix(loss=f"{line['loss']:.3f}", mtp_top1=f"{line['mtp_top1']:.2f}")
        run.checkpoint(state)
    finished = state.tokens >= cfg.total_tokens and f"stage{state.stage}" not in state.heldout
    if finished:
        state.heldout[f"stage{state.stage}"] = evaluate(model, heldout, cfg.micro_batch, run.device)
    run.close(state if finished else None)
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
