"""Reinforcement learning from verifiable rewards: problems, verifiers, sandbox, rewards, GRPO."""
