"""How the next token is chosen: greedy, temperature, top-k and top-p (nucleus) sampling.

Given logits z over the vocabulary:
    greedy:       x = argmax z
    temperature:  p = softmax(z / τ)          (τ < 1 sharpens, τ > 1 flattens)
    top-k:        keep the k largest z, renormalise
    top-p:        keep the smallest set of tokens whose probability sums to ≥ p, renormalise
MiMo samples RL rollouts at τ = 1.0, top-p 1.0 and evaluates at τ = 0.6, top-p 0.95 (facts file
§4.6, §6).

The log-probability returned with each token is log softmax(z / τ) at that token (log softmax(z)
when greedy), before top-k / top-p truncation: the value an RL trainer recomputes with a full
forward pass as log π_old.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    """How to sample and when to stop.

    temperature:     τ ≥ 0; 0 means greedy.
    top_p:           nucleus mass in (0, 1]; 1 keeps every token.
    top_k:           keep the k most likely tokens; 0 keeps every token.
    max_new_tokens:  at most this many generated tokens (finish reason "length").
    stop_token_ids:  tokens that end a completion, e.g. the EOS id (finish reason "stop").
    stop_strings:    texts that end a completion once decoded (needs a tokenizer; "stop").
    seed:            seeds the sampler's generator; None draws a fresh seed.
    A completion keeps its stop token, or the tokens that spelled its stop string.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    stop_token_ids: tuple[int, ...] = ()
    stop_strings: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self):
        # accept lists for convenience, keep tuples so the params stay hashable
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))
        object.__setattr__(self, "stop_strings", tuple(self.stop_strings))
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise ValueError(f"temperature must be ≥ 0 (0 means greedy), got {self.temperature!r}.")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1] (1 keeps every token), got {self.top_p!r}.")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer ≥ 0 (0 keeps every token), got {self.top_k!r}.")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}.")
        if not all(isinstance(t, int) and t >= 0 for t in self.stop_token_ids):
            raise ValueError(f"stop_token_ids must be token ids (integers ≥ 0), got {self.stop_token_ids!r}.")
        if not all(isinstance(s, str) and s for s in self.stop_strings):
            raise ValueError(f"stop_strings must be non-empty strings, got {self.stop_strings!r}.")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def generator(self, device) -> torch.Generator:
        """The seeded random source every sampling step of one run draws from."""
        g = torch.Generator(device=device)
        if self.seed is None:
            g.seed()
        else:
            g.manual_seed(self.seed)
        return g


def probabilities(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The distribution sampling draws from: softmax(z / τ) cut to top-k and top-p. (B, V) → (B, V)."""
    z = logits.float() / params.temperature
    if params.top_k and params.top_k < z.shape[-1]:
        kth = z.topk(params.top_k, dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    if params.top_p < 1:
        z = top_p_cut(z, params.top_p)
    return z.softmax(-1)


def top_p_cut(z: torch.Tensor, top_p: float, candidates: int = 64) -> torch.Tensor:
    """Nucleus sampling's cut: keep token i iff the probability mass of the tokens ranked before
    it is < top_p (the smallest set reaching top_p); the others get -inf. (B, V) → (B, V).

    Only the `candidates` most likely tokens are ranked (`topk`, not a sort of the vocabulary:
    5× less time at a batch of 64); when they hold less than top_p of some row's mass, every
    token is ranked instead. Either way the kept set is the one a full sort gives, except for a
    token whose mass before it equals top_p to float rounding (the two sums round differently).
    """
    k = min(candidates, z.shape[-1])
    z_top, order = z.topk(k, dim=-1)                      # (B, k), most likely first
    p_top = z.softmax(-1).gather(-1, order)
    if k < z.shape[-1] and not bool((p_top.sum(-1) >= top_p).all()):
        return top_p_cut(z, top_p, z.shape[-1])
    drop = p_top.cumsum(-1) - p_top >= top_p             # beyond the k: dropped (mass before ≥ top_p)
    return torch.full_like(z, float("-inf")).scatter(-1, order, z_top.masked_fill(drop, float("-inf")))


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """log softmax(z / τ)[token] (τ = 1 when greedy), (B, V), (B,) → (B,)."""
    z = logits.float()
    if not params.greedy:
        z = z / params.temperature
    return z.log_softmax(-1).gather(-1, tokens[:, None]).squeeze(-1)


def sample(logits: torch.Tensor, params: SamplingParams,
           generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Next tokens (B,) and their log-probabilities (B,) from last-position logits (B, V)."""
    if params.greedy:
        tokens = logits.argmax(-1)
    else:
        tokens = torch.multinomial(probabilities(logits, params), 1, generator=generator).squeeze(-1)
    return tokens, token_logprobs(logits, tokens, params)
