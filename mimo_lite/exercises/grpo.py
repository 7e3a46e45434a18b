"""Notebook 08's implementation exercises: group advantages (Eq. 2) and the Clip-Higher loss (Eq. 1).

Each checker compares the learner's function with `mimo_lite/rl/grpo.py` on hidden inputs.
"""

from __future__ import annotations

import math

import torch

from ..rl.grpo import grpo_loss, group_advantages
from .checking import FAILED, Case, CheckResult, Mismatch, compare_tensors, run_cases


# ---- group advantages -------------------------------------------------------------------------

def _advantage_mistakes(rewards: list) -> dict:
    scored = [r for r in rewards if r is not None]
    n, mean = len(scored), sum(scored) / len(scored)
    sample_std = math.sqrt(sum((r - mean) ** 2 for r in scored) / max(n - 1, 1))
    population_std = math.sqrt(sum((r - mean) ** 2 for r in scored) / n)
    as_zero = [0.0 if r is None else r for r in rewards]
    mean0 = sum(as_zero) / len(as_zero)
    std0 = math.sqrt(sum((r - mean0) ** 2 for r in as_zero) / (len(as_zero) - 1))

    def each(f):
        return [None if r is None else f(r) for r in rewards]

    def divide(a, b):
        return a / b if b else math.nan
    return {
        "divided by the population std (÷G inside the root, numpy's default); Eq. 2 in the kit "
        "uses the sample std (÷(G − 1), torch.std's default)": each(lambda r: divide(r - mean, population_std)),
        "centred on the group mean but not divided by the std": each(lambda r: r - mean),
        "divided by the std but not centred on the group mean": each(lambda r: divide(r, sample_std)),
        "an unscored answer (None) counted as reward 0 in the mean and std; leave it out and keep "
        "its advantage None": [divide(r - mean0, std0) for r in as_zero],
    }


def check_group_advantages(fn):
    """Check `group_advantages(rewards) -> list` against `mimo_lite.rl.grpo.group_advantages`.

    rewards: list[float | None], one group's G rewards; None marks an answer that could not be
    scored. Returns a list of the same length: A_i = (r_i − mean) / (std + 1e-6) over the scored
    rewards, with the sample std (÷(G − 1)); None stays None; a group with fewer than two scored
    rewards, or with all of them equal, gets advantage 0.0 (no signal).
    """
    cases = []
    for name, rewards in [
            ("a group of 8 binary rewards, 3 right", [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
            ("graded code rewards (the soft test-difficulty reward)", [0.2, 0.5, 0.9, 0.5, 0.0, 1.0]),
            ("a group where every answer is right (all rewards equal)", [1.0, 1.0, 1.0, 1.0]),
            ("a group with one unscored answer (None)", [1.0, None, 0.0, 0.0, 1.0, 0.0]),
            ("a group with one scored answer among unscored ones", [None, 1.0, None])]:
        cases.append(Case(name, (rewards,), group_advantages(rewards), _advantage_mistakes(rewards)))

    def compare(got, expected):
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            raise Mismatch(f"expected a list of {len(expected)} advantages, got {got!r}.")
        for i, (a, b) in enumerate(zip(got, expected)):
            if b is None:
                if a is not None:
                    raise Mismatch(f"answer {i} was not scored (reward None): its advantage must stay "
                                   f"None, got {a!r}.")
                continue
            a = float(a) if a is not None else math.nan
            if not math.isfinite(a):
                raise Mismatch(f"advantage {i} is {a}: when the scored rewards are all equal (or only "
                               f"one is scored) the std is 0; the group carries no signal and every "
                               f"advantage is 0.0 — add eps to the std or return zeros.")
            if not math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4):
                raise Mismatch(f"advantage {i}: expected {b:.5g}, got {a:.5g}.")

    hint = ("Recall Eq. 2: A_i = (r_i − mean) / (std + eps) over the scored rewards; when all "
            "rewards are equal the std is 0 and every advantage is 0.")
    return run_cases("group advantages", fn, cases, compare, "mimo_lite.rl.grpo.group_advantages", hint)


# ---- the Clip-Higher loss ---------------------------------------------------------------------

def _loss_inputs(g, B, T, spread=0.3):
    old = -torch.rand(B, T, generator=g) * 3 - 0.1
    new = old + torch.randn(B, T, generator=g) * spread
    return new, old


def check_clip_higher_loss(fn):
    """Check `clip_higher_loss(logprobs, old_logprobs, advantages, mask, eps_low, eps_high) -> Tensor`
    against `mimo_lite.rl.grpo.grpo_loss` (MiMo's settings: token-level mean, no KL).

    logprobs, old_logprobs: (B, T) log-probabilities of each answer token under π_θ and π_old;
    advantages: (B,) one A_i per answer; mask: (B, T) 1.0 on answer tokens, 0.0 on padding;
    eps_low, eps_high: floats. Returns the scalar −J(θ) of Eq. 1, differentiable in logprobs:
        ρ = exp(logprobs − old_logprobs);  per token −min(ρ·A, clip(ρ, 1 − eps_low, 1 + eps_high)·A)
        summed over the answer tokens of the whole batch and divided by their number.
    """
    g = torch.Generator().manual_seed(8)
    cases = []

    # 1. an ordinary batch; 2. ratios placed at and around the clip bounds; 3. padding
    new1, old1 = _loss_inputs(g, 3, 5)
    adv1 = torch.tensor([1.0, -1.0, 0.5])
    mask1 = torch.ones(3, 5)
    ratios = torch.tensor([[0.8, 1.28, 1.25, 1.5, 0.5, 1.0],        # A > 0: 1.25 is clipped only by ε_high = 0.2
                           [0.8, 1.28, 0.7, 1.5, 0.9, 1.0]])        # A < 0: 0.7 clipped at 1 − ε_low
    old2 = -torch.rand(2, 6, generator=g) - 0.5
    new2, adv2, mask2 = old2 + ratios.log(), torch.tensor([2.0, -1.5]), torch.ones(2, 6)
    new3, old3 = _loss_inputs(g, 3, 8, spread=0.5)
    lengths = torch.tensor([8, 3, 5])
    mask3 = (torch.arange(8) < lengths[:, None]).float()
    new3 = torch.where(mask3.bool(), new3, torch.zeros(()))          # padding: whatever the buffer held
    adv3 = torch.tensor([0.7, -1.2, 1.1])
    for name, new, old, adv, mask, lo, hi in [
            ("a batch of 3 answers of 5 tokens, ε = (0.2, 0.28)", new1, old1, adv1, mask1, 0.2, 0.28),
            ("ratios at and around the clip bounds (0.8, 1.25, 1.28, 1.5) with A > 0 and A < 0",
             new2, old2, adv2, mask2, 0.2, 0.28),
            ("answers of 8, 3 and 5 tokens padded to 8", new3, old3, adv3, mask3, 0.2, 0.28),
            ("the same padded batch with ε = (0.1, 0.5)", new3, old3, adv3, mask3, 0.1, 0.5)]:
        def lib(**kw):
            args = dict(eps_low=lo, eps_high=hi) | kw
            return grpo_loss(new, old, adv, args.pop("mask", mask), **args)[0].detach()
        expected = lib()
        ratio = (new - old).exp()
        clipped = ratio.clamp(1 - lo, 1 + hi)
        mistakes = {
            "a symmetric clip at 1 ± eps_low: Clip-Higher lets the ratio rise to 1 + eps_high": lib(eps_high=lo),
            "each answer averaged over its own tokens first (the original GRPO's mean); MiMo divides "
            "the sum over all tokens by their count, 1/Σ|o_i|": lib(token_level=False),
            "the objective J returned instead of the loss −J (the sign)": -lib(),
            "padding tokens counted: multiply by the mask before summing and divide by mask.sum()":
                lib(mask=torch.ones_like(mask)),
            "max instead of min of the two terms (the pessimistic bound is the min)":
                -(torch.maximum(ratio * adv[:, None], clipped * adv[:, None]) * mask).sum() / mask.sum(),
            "only the clipped term kept, clip(ρ)·A, without the min with ρ·A":
                -(clipped * adv[:, None] * mask).sum() / mask.sum(),
            "the ratio taken as logprobs − old_logprobs without exp (ρ = π_θ/π_old = exp of the difference)":
                -(torch.minimum((new - old) * adv[:, None], (new - old).clamp(1 - lo, 1 + hi) * adv[:, None])
                  * mask).sum() / mask.sum(),
        }
        cases.append(Case(name, (new, old, adv, mask, lo, hi), expected, mistakes))

    def compare(got, expected):
        if isinstance(got, float):
            raise Mismatch("got a Python float: return the loss as a tensor (no .item()), so that "
                           "loss.backward() can reach logprobs.")
        compare_tensors(got, expected, atol=1e-5, rtol=1e-4)

    hint = ("Recall Eq. 1: −Σ mask·min(ρA, clip(ρ, 1 − ε_low, 1 + ε_high)A) / Σ mask, with "
            "ρ = exp(logprobs − old_logprobs) and A broadcast over each answer's tokens.")
    result = run_cases("Clip-Higher loss", fn, cases, compare, "mimo_lite.rl.grpo.grpo_loss", hint)
    if result.passed:
        result = _check_gradient(fn, new1, old1, adv1, mask1, result)
    return result


def _check_gradient(fn, new, old, adv, mask, passed):
    """The values match; the loss must also carry the gradient PPO-style clipping prescribes."""
    mine, ref = new.clone().requires_grad_(), new.clone().requires_grad_()
    try:
        loss = fn(mine, old.clone(), adv.clone(), mask.clone(), 0.2, 0.28)
        loss.backward()
    except Exception as err:
        return CheckResult(passed.exercise, FAILED, f"The values match, but loss.backward() "
                            f"failed ({type(err).__name__}: {err}): build the loss from logprobs with "
                            f"tensor operations, without .item() or torch.no_grad().")
    grpo_loss(ref, old, adv, mask)[0].backward()
    if mine.grad is None or not torch.allclose(mine.grad, ref.grad, atol=1e-5, rtol=1e-4):
        return CheckResult(passed.exercise, FAILED, "The values match, but the gradient with "
                            "respect to logprobs does not: a term was detached or computed from "
                            "old_logprobs alone. Only clipped tokens should get no gradient.")
    passed.message += " Its gradient with respect to logprobs matches too."
    return passed
