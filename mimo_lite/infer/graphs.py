"""CUDA graphs over the engine's decode step: one replay instead of hundreds of kernel launches.

A decoding step at small batch does little arithmetic per kernel, so on a GPU its time goes to
launching kernels: at the `gpu` profile size (12 blocks) the eager step issues ~550 of them, each
a few microseconds of CPU work, and the GPU waits between them. A CUDA graph records the
kernels of one step once and replays the whole sequence with a single launch. The recording
holds fixed shapes and fixed addresses, so the step has to be written for that:

  shapes      `FusedDecoder.decode_step` takes one token per row for a bucket of B rows and
              attends over a fixed `span` of cache columns, masking each row's columns beyond
              its length: the mask follows the lengths, the shapes do not.
  addresses   ids, positions and logits live in buffers made once per (B, span); a step copies
              its inputs in, replays, and reads the logits out. The cache is preallocated.
  buckets     B ∈ {1, 2, 4, .., max_batch_size}, span ∈ {64, 128, .., max_length}: a step of
              n rows whose longest holds L tokens replays the smallest graph with B ≥ n and
              span > L, recorded the first time it is needed.
  padding     rows n..B-1 of a bucket are free cache rows (active rows are always 0..n-1, see
              `engine`): they write garbage into their own row, which the next prefill
              overwrites and the mask hides until then.

Prefill (many tokens per row, a new shape each time) stays eager; so does sampling. The engine
launches each step before the previous one's tokens reach the CPU (`Engine._decode`), so the GPU
replays while the CPU records tokens and checks stop conditions.

The graphs read the decoder's weights and the cache by address, so a `DecodeGraphs` belongs to
one cache and is re-recorded for each new decoder (new weights, see `decoder_for`). Caches with
their graphs wait in a pool per model once their engine is gone, so the next engine of the same
shape (`generate` makes one per call) replays without recording again.

`capture=False` runs the same static-shape step eagerly: on a CPU it is what the tests compare
with the engine's eager path, and it shows what a graph replays.
"""

from __future__ import annotations

import weakref

import torch

from .cache import KVCache
from .fused import FusedDecoder

SMALLEST_SPAN = 64


def buckets(smallest: int, largest: int) -> list[int]:
    """smallest, 2·smallest, 4·smallest, .. below `largest`, then `largest`.

    >>> buckets(1, 24)
    [1, 2, 4, 8, 16, 24]
    """
    sizes = []
    while smallest < largest:
        sizes.append(smallest)
        smallest *= 2
    return sizes + [largest]


class DecodeGraphs:
    """A KV cache and the decode steps recorded over it, one per (rows, span) bucket.

        graphs = DecodeGraphs(cache, capture=True)
        graphs.use(decoder)                          # at the start of each run
        logits = graphs.decode(next_tokens, lengths)  # (n, V); writes each row's K, V at its length
    """

    def __init__(self, cache: KVCache, capture: bool):
        batch_size = cache.k.shape[1]
        self.cache, self.capture = cache, capture
        self.batch_buckets = buckets(1, batch_size)
        self.span_buckets = buckets(min(SMALLEST_SPAN, cache.max_length), cache.max_length)
        self.decoder: FusedDecoder | None = None
        self.steps: dict[tuple[int, int], tuple] = {}     # (B, span) → (ids, positions, logits, graph)
        self.pool = torch.cuda.graph_pool_handle() if capture else None
        self.holder = None                                 # weakref to the engine using it

    def use(self, decoder: FusedDecoder) -> None:
        """Decode with `decoder` from now on; steps recorded with another decoder are dropped.

        With them goes their memory pool: once the last graph recorded into a pool is freed, the
        allocator keeps the pool only until its blocks are (the old logits may still be held) and
        refuses to record into it again, so the new decoder's steps get a new pool.
        """
        if decoder is not self.decoder:
            self.decoder, self.steps = decoder, {}
            if self.capture:
                self.pool = torch.cuda.graph_pool_handle()

    def decode(self, ids: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """Logits (n, V) after token ids[r] at position lengths[r] of cache row r, r < n."""
        n = len(lengths)
        B = next(b for b in self.batch_buckets if b >= n)
        span = next(s for s in self.span_buckets if s > max(lengths))
        step = self.steps.get((B, span))
        if step is None:
            device = self.cache.k.device
            # zeros: padding rows read token 0 at position 0 until a real row has used them
            step = (torch.zeros(B, dtype=torch.long, device=device),
                    torch.zeros(B, dtype=torch.long, device=device), None, None)
        buffer_ids, buffer_positions, logits, graph = step
        buffer_ids[:n].copy_(ids)
        buffer_positions[:n].copy_(torch.tensor(lengths), non_blocking=True)
        if not self.capture:
            logits = self.decoder.decode_step(buffer_ids, buffer_positions, self.cache, span)
        elif graph is None:
            logits, graph = self._record(buffer_ids, buffer_positions, span)
        else:
            graph.replay()
        self.steps[B, span] = buffer_ids, buffer_positions, logits, graph
        return logits[:n]

    def _record(self, ids, positions, span):
        """Record the step on the inputs already in the buffers; returns its logits, replayed.

        Warm-up runs (on a side stream, as capture requires) write the same K, V that the
        replay writes, so recording in the middle of a run leaves the cache as it should be.
        """
        decoder, cache = self.decoder, self.cache
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                decoder.decode_step(ids, positions, cache, span)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            logits = decoder.decode_step(ids, positions, cache, span)
        graph.replay()
        return logits, graph


_pools: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()     # model → [DecodeGraphs]
KEEP_FREE = 2      # caches kept per model for engines to come, most recently borrowed first


def borrow(model, engine, batch_size: int, max_length: int, capture: bool) -> DecodeGraphs:
    """A cache of (batch_size, max_length) for `model` with its recorded steps, held by `engine`
    until the engine is gone or calls `give_back`: a free one of that shape, else a new one."""
    weight = model.lm_head.weight
    wanted = (batch_size, max_length, weight.device, weight.dtype, capture)
    pool = _pools.setdefault(model, [])
    graphs = next((g for g in pool if _free(g) and _shape(g) == wanted), None)
    if graphs is None:
        graphs = DecodeGraphs(KVCache.for_model(model, batch_size, max_length, include_mtp=False), capture)
    else:
        pool.remove(graphs)
    graphs.holder = weakref.ref(engine)
    free = [g for g in pool if _free(g)]
    pool[:] = [graphs] + [g for g in pool if not _free(g)] + free[:KEEP_FREE - 1]
    return graphs


def _shape(graphs: DecodeGraphs) -> tuple:
    k = graphs.cache.k
    return k.shape[1], graphs.cache.max_length, k.device, k.dtype, graphs.capture


def give_back(graphs: DecodeGraphs) -> None:
    graphs.holder = None


def _free(graphs: DecodeGraphs) -> bool:
    return graphs.holder is None or graphs.holder() is None
