"""Training: the pre-training loop, its schedules and checkpoints (notebook 04)."""

from .pretrain import ensure_base_model, pretrain, run_control

__all__ = ["ensure_base_model", "pretrain", "run_control"]
