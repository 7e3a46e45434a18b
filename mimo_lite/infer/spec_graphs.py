"""Greedy MTP speculative decoding at batch 1 with each step recorded as one CUDA graph.

`speculative_generate`'s eager loop spends a step's time launching kernels on a GPU: K MTP
passes, a verify pass over K+1 tokens and the acceptance test, each a few hundred small kernels,
with the CPU waiting for every draft token before it can feed the next layer. Plain decoding
replays one recorded graph per token (`graphs.DecodeGraphs`), so an eager speculative step loses
to it even when most drafts are accepted. Here the whole greedy step (draft, verify, accept)
runs on the device with fixed shapes, so that it can be recorded once and replayed:

  state     on the device, at fixed addresses: n (tokens the main model has read), the last K+1
            known tokens x_{n-K}..x_n and the main model's last K+1 states h_{n-K-1}..h_{n-1}.
  draft     MTP layer k runs over the K+1 indices n-K-1..n-1 every step (the eager loop runs
            it over the indices not yet valid, between 1 and K+1 of them): recomputing an entry
            that was already right writes the same keys and values again, so the cache ends as
            the eager loop leaves it, and the shape no longer depends on how many drafts were
            accepted. Each draft is an argmax on the device, read by the next layer there.
  verify    the main stack over [x_n, d_1..d_K] at positions n..n+K (`FusedDecoder.span_forward`).
  accept    a = the number of leading drafts equal to the main model's argmax; the step emits
            d_1..d_a and the main model's token after them, and moves the state on by 1 + a.

Shapes depend on the span bucket alone (the cache columns every pass attends over, masked by
position), as in `graphs.DecodeGraphs`; a step reads back a and the K+1 emitted tokens, one
synchronisation, which the loop needs anyway to check its stop conditions. `capture=False` runs
the same fixed-shape step eagerly: on a CPU the tests compare it with the eager loop.
"""

from __future__ import annotations

import weakref

import torch

from .cache import KVCache
from .fused import FusedDecoder
from .graphs import SMALLEST_SPAN, buckets


class SpeculativeGraphs:
    """The fixed-shape greedy speculative step of one decoder over one cache row, per span bucket.

        spec = SpeculativeGraphs(decoder, cache, num_draft=1, capture=True)
        spec.start(n, known_tokens, hidden)           # after the prompt's prefill
        accepted, tokens, logprobs = spec.step(n)     # tokens[:accepted + 1] are the new ones
    """

    def __init__(self, decoder: FusedDecoder, cache: KVCache, num_draft: int, capture: bool):
        K, device = num_draft, cache.k.device
        self.decoder, self.cache, self.K, self.capture = decoder, cache, K, capture
        self.spans = buckets(min(SMALLEST_SPAN, cache.max_length), cache.max_length)
        self.n = torch.zeros((), dtype=torch.long, device=device)
        self.tokens = torch.zeros(K + 1, dtype=torch.long, device=device)
        self.hidden = torch.zeros(K + 1, decoder.embed.shape[1], dtype=decoder.embed.dtype, device=device)
        self.offsets = torch.arange(K + 1, device=device)
        self.steps: dict[int, tuple] = {}            # span → (outputs, graph)
        self.pool = torch.cuda.graph_pool_handle() if capture else None

    def use(self, decoder: FusedDecoder) -> None:
        """Decode with `decoder` from now on; steps recorded with another one are dropped, and
        recorded anew into a new pool (see `DecodeGraphs.use`)."""
        if decoder is not self.decoder:
            self.decoder, self.steps = decoder, {}
            if self.capture:
                self.pool = torch.cuda.graph_pool_handle()

    def start(self, n: int, tokens: list[int], hidden: torch.Tensor) -> None:
        """The state after a prefill: the main model has read n tokens; `tokens` are x_{n-K}..x_n
        and `hidden` (K+1, D) the states h_{n-K-1}..h_{n-1}."""
        self.n.fill_(n)
        self.tokens.copy_(torch.tensor(tokens), non_blocking=True)
        self.hidden.copy_(hidden)

    def step(self, n: int) -> tuple[int, list[int], list[float]]:
        """One speculative step from n (the host's copy of the state's n): (drafts accepted a,
        K+1 tokens of which the first a+1 are new, their log-probabilities)."""
        span = next(s for s in self.spans if s > n + self.K)
        outputs, graph = self.steps.get(span, (None, None))
        if not self.capture:
            outputs = self._step(span)
        elif graph is None:
            outputs, graph = self._record(span)
        else:
            graph.replay()
        self.steps[span] = outputs, graph
        accepted, tokens, logprobs = outputs
        row = torch.cat([accepted[None].float(), tokens.float(), logprobs]).tolist()
        K1 = self.K + 1
        return int(row[0]), [int(t) for t in row[1:1 + K1]], row[1 + K1:]

    def _step(self, span: int):
        decoder, cache, K = self.decoder, self.cache, self.K
        columns = self.n - (K + 1) + self.offsets                    # MTP indices n-K-1 .. n-1
        z, known, drafts = self.hidden[None], self.tokens, []
        for k in range(K):
            ids = torch.cat([known, *drafts])[k:k + K + 1]             # x_{t+k+1} at index t
            z, logits = decoder.span_mtp(k, z, ids, columns, cache, span)
            drafts.append(logits.argmax(-1))                           # (1,)
        verify = torch.cat([known[-1:], *drafts])                      # x_n, d_1 .. d_K
        h = decoder.span_forward(verify, self.n + self.offsets, cache, span)    # (K+1, D)
        logits = decoder.logits(h)
        target = logits.argmax(-1)                                     # the main model's choices
        accepted = (verify[1:] == target[:K]).long().cumprod(0).sum()
        # index_select, not target[accepted]: a tensor index of no dimensions reads it on the host,
        # which a CUDA graph cannot record
        emitted = torch.where(self.offsets < accepted, torch.cat([verify[1:], target[-1:]]),
                              target.index_select(0, accepted[None]))
        logprobs = logits.float().log_softmax(-1).gather(-1, emitted[:, None])[:, 0]
        # move on by 1 + a: the last K+1 known tokens and states end a+1 places further
        keep = accepted + 1 + self.offsets
        self.tokens.copy_(torch.cat([known, emitted]).index_select(0, keep))
        self.hidden.copy_(torch.cat([self.hidden, h]).index_select(0, keep))
        self.n.add_(accepted + 1)
        return accepted, emitted, logprobs

    def _record(self, span: int):
        """Record the step on the current state; returns its outputs, replayed once.

        The step moves the state on, so the warm-up runs (on a side stream, as capture requires)
        each start from a saved copy of it; the cache entries they write are the ones the replay
        writes again.
        """
        saved = self.n.clone(), self.tokens.clone(), self.hidden.clone()

        def restore():
            for buffer, value in zip((self.n, self.tokens, self.hidden), saved):
                buffer.copy_(value)

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step(span)
                restore()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            outputs = self._step(span)
        graph.replay()
        return outputs, graph


_pools: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()    # model → [SpeculativeGraphs]


def borrow(model, decoder: FusedDecoder, num_draft: int, max_length: int, capture: bool) -> SpeculativeGraphs:
    """A cache row of at least `max_length` columns with its recorded steps for `model`: one kept
    from an earlier call (recording is done once), else a new one of the next power of two.
    `speculative_generate` runs once per prompt, and the timing loops run it hundreds of times.
    One generation at a time per model: the kept row is shared."""
    pool = _pools.setdefault(model, [])
    weight = model.lm_head.weight
    fits = [s for s in pool if s.K == num_draft and s.capture == capture and s.cache.max_length >= max_length
            and s.cache.k.dtype == weight.dtype and s.cache.k.device == weight.device]
    if fits:
        spec = min(fits, key=lambda s: s.cache.max_length)
    else:
        cache = KVCache.for_model(model, 1, 1 << (max_length - 1).bit_length())
        spec = SpeculativeGraphs(decoder, cache, num_draft, capture)
        pool.append(spec)
    spec.use(decoder)
    return spec
