"""Evaluation: sample answers to verifiable problems and score them (pass@k, notebook 10)."""

from __future__ import annotations

import math

import torch


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Unbiased pass@k from n samples of which `correct` are right: 1 − C(n−c, k) / C(n, k)."""
    if not 0 <= correct <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 ≤ correct ≤ n and 1 ≤ k ≤ n, got n={n}, correct={correct}, k={k}.")
    if n - correct < k:
        return 1.0
    return 1.0 - math.comb(n - correct, k) / math.comb(n, k)


@torch.no_grad()
def sample_answers(model, tokenizer, prompts: list[str], n: int, temperature: float = 0.8,
                   top_p: float = 0.95, max_new_tokens: int = 128, seed: int = 0,
                   batch_size: int = 32) -> list[list[str]]:
    """`n` sampled replies per user prompt, rendered with the chat template (the model thinks first)."""
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    flat = [t for t in texts for _ in range(n)]
    tokenizer.padding_side = "left"
    replies = []
    for start in range(0, len(flat), batch_size):
        batch = tokenizer(flat[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        out = model.generate(**batch, do_sample=True, temperature=temperature, top_p=top_p,
                             max_new_tokens=max_new_tokens, eos_token_id=model.config.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
        replies += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return [replies[i * n:(i + 1) * n] for i in range(len(prompts))]
