"""Evaluation: sample answers to verifiable problems and score them (pass@k, notebook 10).

    pass_at_k, avg_at_k           the estimators, from counts of right answers
    evaluate, summarise           the stage: a checkpoint on a suite -> a table -> intervals (stage.py)
    load_suite, load_checkpoint   the kit's held-out problems and public formats (suites.py); models
    export_lm_eval_tasks          the suites as lm-evaluation-harness tasks (lm_eval_tasks.py)
    solve_rate                    held-out pass@1 inside training runs (notebooks 06 and 08)
    heldout_scores                solve_rate of a saved model, greedy and sampled, in a worker (06)
"""

from __future__ import annotations

from .estimators import avg_at_k, pass_at_k, prompt_ids
from .lm_eval_tasks import export_lm_eval_tasks
from .stage import evaluate, load_checkpoint, summarise
from .suites import load_suite

__all__ = ["avg_at_k", "bootstrap_interval", "evaluate", "export_lm_eval_tasks", "load_checkpoint",
           "heldout_scores", "load_suite", "pass_at_k", "prompt_ids", "sample_answers", "solve_rate", "summarise"]


def sample_answers(model, tokenizer, prompts: list[str], n: int, temperature: float = 0.8,
                   top_p: float = 0.95, max_new_tokens: int = 128, seed: int = 0,
                   batch_size: int = 32) -> list[list[str]]:
    """`n` sampled replies per user prompt, rendered with the chat template (the model thinks
    first), from the kit's engine: the evaluation stage's own generation path."""
    from .stage import generate_replies

    problems = [{"id": str(i), "prompt": p} for i, p in enumerate(prompts)]
    replies = generate_replies(model, tokenizer, problems, n, temperature, top_p, max_new_tokens,
                               seed, batch_size)
    return [[r["reply"] for r in rs] for rs in replies]


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



def heldout_scores(folder, problems: list[dict], max_new_tokens: int, samples: int = 4,
                   temperature: float = 1.0, seed: int = 0, device: str = "cpu") -> dict:
    """`solve_rate` of the model saved in `folder`, greedy and with `samples` sampled replies per
    problem: {"folder", "greedy", "sampled"}. Loads its own model and tokenizer, so that it can run
    in a worker process (`artifacts.Jobs`) right after the run that trained it."""
    model, tokenizer = load_checkpoint(folder)
    model = model.to(device)
    return {"folder": folder,
            "greedy": solve_rate(model, tokenizer, problems, max_new_tokens=max_new_tokens),
            "sampled": solve_rate(model, tokenizer, problems, samples=samples, temperature=temperature,
                                  max_new_tokens=max_new_tokens, seed=seed)}
