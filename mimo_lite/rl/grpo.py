"""MiMo's GRPO objective: group-normalised advantages, Clip-Higher, a token-level mean, no KL.

Report §3.3, Eq. 1–2 (facts file §4.3). For a prompt q the rollout policy π_old samples a group
of G answers o_1..o_G with rewards r_1..r_G; every token of answer i gets the advantage

    A_i = (r_i − mean(r_1..r_G)) / std(r_1..r_G)                                  (Eq. 2)

and the policy maximises

    J(θ) = 1/Σ_i|o_i| · Σ_i Σ_j min( ρ_ij A_i, clip(ρ_ij, 1 − ε_low, 1 + ε_high) A_i )   (Eq. 1)

with the per-token ratio ρ_ij = π_θ(o_ij | q, o_i<j) / π_old(o_ij | q, o_i<j). What MiMo changed
relative to the original GRPO:
  * no KL term against a reference model;
  * Clip-Higher: ε_high > ε_low, so a rare token whose probability should rise is not stopped
    at 1 + 0.2. The paper gives no values; the kit uses DAPO's ε_low = 0.2, ε_high = 0.28;
  * the token-level mean 1/Σ_i|o_i|: every token weighs the same, where the original GRPO
    averaged each answer over its own length first (long answers then weigh less per token).
The KL term and the sequence-level mean are kept here only as switches for ablations.

π_old's log-probabilities are the ones the rollout engine returned with each sampled token
(log softmax(z/τ)), so no extra forward pass is needed before the first update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def group_advantages(rewards: list[float | None], eps: float = 1e-6) -> list[float | None]:
    """Eq. 2 over one group: (r − mean) / std of the scored rewards; None stays None (unscored).

    A group whose scored rewards are all equal carries no signal: every advantage is 0.
    """
    scored = [r for r in rewards if r is not None]
    if len(scored) < 2:
        return [None if r is None else 0.0 for r in rewards]
    mean = sum(scored) / len(scored)
    std = (sum((r - mean) ** 2 for r in scored) / (len(scored) - 1)) ** 0.5
    return [None if r is None else (r - mean) / (std + eps) for r in rewards]


@dataclass
class LossStats:
    """What one mini-batch of the objective did, for the metrics."""
    loss: float
    ratio_mean: float
    clip_low: float        # share of tokens with A < 0 whose ratio fell below 1 − ε_low (no gradient)
    clip_high: float       # share of tokens with A > 0 whose ratio rose above 1 + ε_high (no gradient)
    kl: float              # k3 estimate of KL(π_θ ‖ π_ref), 0 without a reference
    tokens: int


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, eps_low: float = 0.2, eps_high: float = 0.28,
              token_level: bool = True, kl_coef: float = 0.0,
              ref_logprobs: torch.Tensor | None = None) -> tuple[torch.Tensor, LossStats]:
    """−J(θ) of Eq. 1 for a batch of answers, and its statistics.

    logprobs      (B, T) log π_θ of each answer token (requires grad)
    old_logprobs  (B, T) log π_old, the rollout policy's, returned by the generator
    advantages    (B,)   A_i of each answer (Eq. 2)
    mask          (B, T) 1 on answer tokens, 0 on padding
    token_level   True: 1/Σ_i|o_i| over all tokens (MiMo); False: mean over answers of each
                  answer's own token mean (the original GRPO), an ablation.
    kl_coef       β of the original GRPO's β·KL(π_θ ‖ π_ref) (MiMo: 0); needs ref_logprobs.
    """
    if not 0 <= eps_low < 1 or eps_high < 0:
        raise ValueError(f"clip range needs 0 ≤ ε_low < 1 and ε_high ≥ 0, got {eps_low}, {eps_high}.")
    if kl_coef and ref_logprobs is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs, the reference policy's log-probabilities.")
    mask = mask.to(logprobs.dtype)
    adv = advantages[:, None].to(logprobs.dtype)                          # (B, 1): A_i for every token
    ratio = torch.exp(logprobs - old_logprobs)                           # ρ_ij
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high)
    per_token = -torch.minimum(ratio * adv, clipped * adv)               # −min(ρA, clip(ρ)A)
    kl = torch.zeros_like(per_token)
    if ref_logprobs is not None:                        # k3 estimator: e^(ref−θ) − (ref−θ) − 1
        delta = ref_logprobs - logprobs
        kl = torch.exp(delta) - delta - 1
        per_token = per_token + kl_coef * kl
    if token_level:                                                      # Eq. 1: 1/Σ_i|o_i|
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1)
    else:                                                                # 1/G Σ_i 1/|o_i| Σ_j
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    with torch.no_grad():
        n = mask.sum().clamp(min=1)
        low = ((ratio < 1 - eps_low) & (adv < 0)).to(mask.dtype)
        high = ((ratio > 1 + eps_high) & (adv > 0)).to(mask.dtype)
        stats = LossStats(loss=loss.item(), ratio_mean=((ratio * mask).sum() / n).item(),
                          clip_low=((low * mask).sum() / n).item(),
                          clip_high=((high * mask).sum() / n).item(),
                          kl=((kl * mask).sum() / n).item(), tokens=int(mask.sum().item()))
    return loss, stats


def token_weights(mask: torch.Tensor, token_level: bool = True) -> torch.Tensor:
    """The weight each token gets in the mean: 1/Σ_i|o_i| (token level) or 1/(G·|o_i|). (B, T)."""
    mask = mask.float()
    if token_level:
        return mask / mask.sum()
    return mask / mask.sum(1, keepdim=True).clamp(min=1) / mask.shape[0]
