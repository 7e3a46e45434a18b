"""Training: the pre-training loop, its schedules and checkpoints (notebook 04), and SFT (notebook 06)."""

from .pretrain import ensure_base_model, pretrain, run_control
from .sft import ensure_sft_model

__all__ = ["ensure_base_model", "ensure_sft_model", "pretrain", "run_control"]
