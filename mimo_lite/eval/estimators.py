"""The estimators of the evaluation stage, from counts of right answers; and the prompt rendering.

pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"): draw n ≥ k answers,
count the c right ones; the chance that at least one of k answers drawn without replacement from
those n is right is 1 − C(n−c, k) / C(n, k). It is unbiased for the pass@k of the model, where
1 − (1 − c/n)^k is not.
"""

from __future__ import annotations

import math


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Unbiased pass@k from n samples of which `correct` are right: 1 − C(n−c, k) / C(n, k)."""
    if not 0 <= correct <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 ≤ correct ≤ n and 1 ≤ k ≤ n, got n={n}, correct={correct}, k={k}.")
    if n - correct < k:
        return 1.0
    return 1.0 - math.comb(n - correct, k) / math.comb(n, k)


def avg_at_k(correct: list[bool]) -> float:
    """avg@k: the fraction of k sampled answers that are right, i.e. pass@1 averaged over k
    samples (how MiMo reports AIME over 32 samples, facts file §6).

    >>> avg_at_k([True, False, False, True])
    0.5
    """
    if not correct:
        raise ValueError("avg@k needs at least one sampled answer.")
    return sum(map(bool, correct)) / len(correct)


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The token ids of one user turn rendered with the chat template, ready for the reply."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                         add_generation_prompt=True, return_dict=False)
