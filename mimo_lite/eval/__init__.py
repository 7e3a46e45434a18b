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


def bootstrap_interval(values: list[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of `values` (one value per problem: problems,
    not samples, are the units that vary). A paired difference is the same call on the per-problem
    differences. `intervals.bootstrap` does the resampling.

    >>> bootstrap_interval([1.0] * 5)
    (1.0, 1.0)
    """
    from .intervals import bootstrap

    if not values:
        raise ValueError("bootstrap_interval needs at least one value.")
    r = bootstrap(list(values), lambda xs: sum(xs) / len(xs), reps=resamples, seed=seed)
    return r["low"], r["high"]


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The token ids of one user turn rendered with the chat template, ready for the reply."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                         add_generation_prompt=True, return_dict=False)


def solve_rate(model, tokenizer, problems: list[dict], samples: int = 1, temperature: float = 0.0,
               top_p: float = 1.0, max_new_tokens: int = 128, batch_size: int = 32, seed: int = 0,
               scheme: str = "soft") -> dict:
    """Held-out pass@1: generate `samples` replies per problem with the kit's engine and score them.

    A reply is correct when the math verifier accepts its boxed answer, or when its program passes
    every test (for code the reward under `scheme` is reported too). pass@1 is the mean over
    problems of the fraction of correct samples (greedy when temperature is 0, then one sample).
    Returns overall and per-domain pass@1, per tier for math (`by_tier`) and for code
    (`code_by_tier`), and one row per problem with its first reply.
    """
    from ..infer import SamplingParams, generate
    from ..tasks.rewards import score

    if not problems:
        raise ValueError("solve_rate needs at least one problem.")
    samples = 1 if temperature == 0 else samples
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                            stop_token_ids=(tokenizer.eos_token_id,), seed=seed)
    prompts = [prompt_ids(tokenizer, p["prompt"]) for p in problems for _ in range(samples)]
    was_training = model.training
    model.eval()
    completions = generate(model, prompts, params, tokenizer, max_batch_size=batch_size)
    model.train(was_training)
    rows = []
    for i, problem in enumerate(problems):
        replies = [tokenizer.decode(c.tokens, skip_special_tokens=True)
                   for c in completions[i * samples:(i + 1) * samples]]
        rewards = [score(problem, r, scheme) for r in replies]
        if problem["domain"] == "math":
            correct = [r == 1.0 for r in rewards]
        else:
            correct = [score(problem, r, "vanilla") == 1.0 for r in replies]
        rows.append(dict(id=problem["id"], domain=problem["domain"], tier=problem.get("tier"),
                         pass_at_1=sum(correct) / samples, reward=sum(r or 0.0 for r in rewards) / samples,
                         reply=replies[0]))

    def mean(selected):
        return sum(r["pass_at_1"] for r in selected) / len(selected) if selected else None

    def tiers(domain):
        chosen = [r for r in rows if r["domain"] == domain and r["tier"] is not None]
        return {t: mean([r for r in chosen if r["tier"] == t])
                for t in sorted({r["tier"] for r in chosen})}

    return dict(pass_at_1=mean(rows), samples=samples,
                math=mean([r for r in rows if r["domain"] == "math"]),
                code=mean([r for r in rows if r["domain"] == "code"]),
                by_tier=tiers("math"), code_by_tier=tiers("code"), rows=rows)
