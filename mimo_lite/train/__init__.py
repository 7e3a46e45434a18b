"""Training: the pre-training loop, its schedules and checkpoints (notebook 04)."""
