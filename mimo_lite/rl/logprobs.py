"""Log-probabilities of the sampled tokens, through the lm_head a chunk of tokens at a time.

GRPO needs, for every answer token, log π_θ(o_j | q, o_<j) = log softmax(z_j / τ)[o_j] with
z_j = lm_head(norm(h_j)): one number per token, out of a V-wide row. Computing all rows at once
holds a (tokens, V) tensor: at MiMo-7B's V = 151,680 and a 32K-token answer that is 20 GB in fp32,
per sequence, and autograd keeps it (and the log-softmax) for the backward.

Here the rows are computed `chunk` tokens at a time, and each chunk is recomputed in the backward
(activation checkpointing) rather than kept, so at most one chunk's (chunk, V) rows exist at any
moment: peak extra memory O(chunk · V) instead of O(tokens · V). Only answer tokens are scored;
prompt positions never reach the lm_head.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.checkpoint import checkpoint


def _chunk_logprobs(head: Callable, hidden: torch.Tensor, targets: torch.Tensor, temperature: float):
    """log softmax(head(h) / τ)[target] and the entropy of that distribution, for one chunk. (n,) each."""
    logp = (head(hidden).float() / max(temperature, 1e-6)).log_softmax(-1)       # (n, V)
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)                   # H = −Σ_v p_v log p_v, a metric only
    return logp.gather(-1, targets[:, None]).squeeze(-1), entropy


def token_logprobs(head: Callable, hidden: torch.Tensor, targets: torch.Tensor, temperature: float,
                   chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """log π_θ(target) at temperature τ for each of N positions, and each position's entropy.

    head     maps hidden states (n, D) to logits (n, V): the final norm, then the lm_head
    hidden   (N, D) the last layer's states at the positions to score (each predicts its target)
    targets  (N,) the token that followed each position
    chunk    positions per pass through the head, each pass recomputed in the backward;
             0: all N in one pass, kept for the backward (the small-vocabulary path)
    Returns (N,) log-probs (differentiable) and (N,) entropies (no gradient), both fp32.
    """
    if chunk <= 0 or chunk >= hidden.shape[0]:
        return _chunk_logprobs(head, hidden, targets, temperature)
    parts = []
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start:start + chunk], targets[start:start + chunk]
        if torch.is_grad_enabled():
            parts.append(checkpoint(_chunk_logprobs, head, h, t, temperature, use_reentrant=False))
        else:
            parts.append(_chunk_logprobs(head, h, t, temperature))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
