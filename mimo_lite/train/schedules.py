"""MiMo-7B's pre-training schedules (report §2.3; facts file §3.3), scaled to any token budget.

The paper's schedule, in tokens (≈23.8T in all):
  stage 1 (17.8T): LR warm-up 0 → 1.07e-4 over 84B, constant for 10.2T, cosine to 3e-5 over 7.5T
  stage 2 (4T):    LR constant 3e-5
  stage 3 (2T):    LR 3e-5 for 1.5T, then cosine to 1e-5 over the last 0.5T
  batch:           linear warm-up to 2,560 sequences over the first 168B tokens, 640 in stage 3
                   (4× longer sequences: tokens per step stay ≈ 21M)
  MTP loss weight: 0.3 for the first 10.3T tokens, 0.1 after
  RoPE base:       10,000 in stages 1–2 (8K context), 640,000 in stage 3 (32K)

Every boundary is kept as a *fraction* of the paper's budget, so the same shape holds at 5M
tokens on a laptop. The warm-ups (0.35% and 0.7% of the budget) are floored at a few optimiser
steps, because a toy run with a 10-step warm-up would otherwise start at full LR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The paper's token counts, in billions.
PAPER = dict(lr_warmup=84, stage1_constant=10_200, stage1_decay=7_500, stage2=4_000,
             stage3_constant=1_500, stage3_decay=500, batch_warmup=168, mtp_switch=10_300)
PAPER_TOTAL = PAPER["lr_warmup"] + PAPER["stage1_constant"] + PAPER["stage1_decay"] + \
    PAPER["stage2"] + PAPER["stage3_constant"] + PAPER["stage3_decay"]          # 23,784B
PAPER_LR = dict(peak=1.07e-4, stage2=3e-5, final=1e-5)


@dataclass(frozen=True)
class Schedule:
    """Where each phase ends, in tokens, for a run of `total_tokens` with the paper's proportions.

    `stage_fractions` (stage 1, 2, 3) lets a toy run give the later stages a larger share than
    the paper's 75% / 17% / 8%; the phases inside each stage keep the paper's proportions.
    """

    total_tokens: int
    peak_lr: float
    stage_fractions: tuple[float, float, float] = (
        (PAPER["lr_warmup"] + PAPER["stage1_constant"] + PAPER["stage1_decay"]) / PAPER_TOTAL,
        PAPER["stage2"] / PAPER_TOTAL,
        (PAPER["stage3_constant"] + PAPER["stage3_decay"]) / PAPER_TOTAL)
    min_warmup_tokens: int = 0
    mtp_loss_weights: tuple[float, float] = (0.3, 0.1)   # λ before and after the switch
    mtp_switch: float = PAPER["mtp_switch"] / PAPER_TOTAL   # share of the tokens before it

    @classmethod
    def of(cls, cfg) -> "Schedule":
        """The schedule a profile's `pretrain` section declares (its `mtp_switch` empty: the paper's)."""
        switch = cls.mtp_switch if cfg.mtp_switch is None else cfg.mtp_switch
        return cls(cfg.total_tokens, cfg.peak_lr, tuple(cfg.stage_fractions), cfg.min_warmup_tokens,
                   tuple(cfg.mtp_loss_weight), switch)

    def __post_init__(self):
        if self.total_tokens <= 0 or self.peak_lr <= 0:
            raise ValueError("A schedule needs total_tokens > 0 and peak_lr > 0.")
        if abs(sum(self.stage_fractions) - 1) > 1e-6 or min(self.stage_fractions) <= 0:
            raise ValueError(f"stage_fractions must be three positive shares summing to 1, got "
                             f"{self.stage_fractions}.")

    # -- boundaries (tokens) ------------------------------------------------------------------
    @property
    def stage_ends(self) -> tuple[int, int, int]:
        f1, f2, _ = self.stage_fractions
        return (round(f1 * self.total_tokens), round((f1 + f2) * self.total_tokens), self.total_tokens)

    def _stage1_phases(self):
        end1 = self.stage_ends[0]
        s1 = PAPER["lr_warmup"] + PAPER["stage1_constant"] + PAPER["stage1_decay"]
        warmup = max(round(PAPER["lr_warmup"] / s1 * end1), self.min_warmup_tokens)
        constant_end = max(warmup, round((PAPER["lr_warmup"] + PAPER["stage1_constant"]) / s1 * end1))
        return warmup, constant_end, end1

    def stage(self, tokens: int) -> int:
        """1, 2 or 3: the stage that the token at offset `tokens` belongs to."""
        end1, end2, _ = self.stage_ends
        return 1 if tokens < end1 else 2 if tokens < end2 else 3

    # -- values -----------------------------------------------------------------------------
    def lr(self, tokens: int) -> float:
        """Learning rate after `tokens` tokens: warm-up → constant → cosine, stage by stage."""
        scale = self.peak_lr / PAPER_LR["peak"]
        mid, final = PAPER_LR["stage2"] * scale, PAPER_LR["final"] * scale
        warmup, constant_end, end1 = self._stage1_phases()
        end2 = self.stage_ends[1]
        s3 = PAPER["stage3_constant"] + PAPER["stage3_decay"]
        decay3_start = end2 + round(PAPER["stage3_constant"] / s3 * (self.total_tokens - end2))
        if tokens < warmup:
            return self.peak_lr * (tokens + 1) / warmup
        if tokens < constant_end:
            return self.peak_lr
        if tokens < end1:
            return cosine(tokens - constant_end, end1 - constant_end, self.peak_lr, mid)
        if tokens < decay3_start:
            return mid
        return cosine(tokens - decay3_start, self.total_tokens - decay3_start, mid, final)

    def batch_fraction(self, tokens: int) -> float:
        """Share of the full batch: linear warm-up over the paper's first 168B of 23.8T tokens."""
        warmup = max(round(PAPER["batch_warmup"] / PAPER_TOTAL * self.total_tokens), self.min_warmup_tokens)
        return min(1.0, (tokens + 1) / warmup)

    def mtp_loss_weight(self, tokens: int) -> float:
        """λ of L = L_main + λ·L_mtp: the paper's 0.3 for the first 10.3T of 23.8T tokens, then 0.1."""
        before, after = self.mtp_loss_weights
        return before if tokens < self.mtp_switch * self.total_tokens else after


def cosine(step: int, length: int, start: float, end: float) -> float:
    progress = min(max(step / max(length, 1), 0.0), 1.0)
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))
