"""Reinforcement learning from verifiable rewards, MiMo style: GRPO, rollout, reward executor, runs."""
