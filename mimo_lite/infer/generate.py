"""Batched generation: prefill every prompt, then decode one token per step with a KV cache.

`generate` is the continuous-batching `Engine` given all its requests at once: prompts of
different lengths share one batch (each cache row holds its own length, no left padding), each
sequence stops on its own, and finished rows make room for the prompts still waiting when there
are more prompts than `max_batch_size`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .engine import Completion, Engine
from .sampling import SamplingParams


def generate(model, prompts: Sequence[Sequence[int]], params: SamplingParams, tokenizer=None,
             max_batch_size: int | None = None, decode: str = "auto") -> list[Completion]:
    """Complete each prompt (a list of token ids); returns one Completion per prompt, in order.

    `Completion.tokens` are the generated ids, `.logprobs` log softmax(z/τ) of each (see
    `sampling`), `.finish_reason` "stop" or "length". `max_batch_size` (default: all prompts)
    bounds how many sequences decode together; `tokenizer` is needed for stop strings; `decode`
    chooses how the engine decodes ("auto": CUDA graphs on a GPU, see `Engine`).
    """
    if not prompts:
        return []
    context = model.config.max_position_embeddings
    longest = max(len(p) for p in prompts)
    engine = Engine(model, params, max_batch_size=max_batch_size or len(prompts),
                    max_length=min(context, max(longest + params.max_new_tokens, 2)),
                    tokenizer=tokenizer, decode=decode)
    for prompt in prompts:
        engine.add_request(prompt)
    done = {c.request_id: c for c in engine.run()}
    return [done[i] for i in range(len(prompts))]
