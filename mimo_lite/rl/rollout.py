"""The rollout interface: give prompts, get completions (token ids and log-probs) as they finish.

The GRPO trainer sees generation only through `RolloutBackend`, so the synchronous loop here can
give way to a Seamless Rollout scheduler (report §3.4.1, notebook 09) or to vLLM at scale without
touching the trainer. A backend reports each completion the moment it ends, which is what lets
rewards be computed while the longer answers are still being generated ("continuous rollout").

After each training step the trainer calls `set_policy(step)`: a backend that holds its own copy
of the weights (vLLM at scale) receives them then; every completion is stamped with the version
that produced it. MiMo's RL is on-policy (facts file §5.1), so the version changes only while no
request is running.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from ..infer import Completion, Engine, SamplingParams
from .weight_sync import load_named


class RolloutBackend(Protocol):
    def rollouts(self, prompts: Sequence[Sequence[int]], seed: int) -> Iterator[tuple[int, Completion]]:
        """Generate one completion per prompt (token ids); yield (prompt index, completion) as
        each finishes. `Completion.tokens` and `.logprobs` are the sampled ids and log π_old."""
        ...

    def set_policy(self, version: int) -> None:
        """The trainer's weights are now version `version` (its step count): generate with them."""
        ...


class EngineRollout:
    """The kit's PyTorch backend: one continuous-batching `Engine` on the policy being trained,
    kept from call to call and step to step.

    It shares the trainer's model object; the engine decodes each run with the weights as they
    are when it starts (`fused.decoder_for` rebuilds its fused copy after an optimiser step), so
    the engine itself is rebuilt only when the weights move to another device or dtype. Two ways
    to use it:

        for i, completion in backend.rollouts(prompts, seed):    # a whole batch (the trainer)
            ...

        rid = backend.submit(prompt_ids, meta)                    # a stream (a Seamless scheduler)
        while not backend.idle():
            for meta, completion in backend.step():               # those that finished this step
                ...
        backend.abort([rid])                                      # stop early: partial completions
        backend.set_policy(version)                               # weights changed; only when idle

    When it decodes a copy of its own (another device, another process), it is a weight-sync
    receiver (`weight_sync.py`): `pause()`, `load(chunk)` for each chunk, `resume(version)`.
    """

    def __init__(self, model, tokenizer, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 96, max_batch_size: int = 64):
        self.model = model
        self.params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                     stop_token_ids=(tokenizer.eos_token_id,))
        self.max_batch_size = max_batch_size
        self.engine: Engine | None = None       # built at the first request
        self.policy_version = 0
        self.meta: dict[int, Any] = {}          # request id → what its submitter attached
        self.paused = False                     # a weight sync is under way: nothing starts

    def _engine(self, length: int) -> Engine:
        """The engine, with rows that hold `length` tokens, on the device and dtype of the weights."""
        weight = self.model.lm_head.weight
        if self.engine is not None and (self.engine.cache.k.device, self.engine.cache.k.dtype) != \
                (weight.device, weight.dtype):
            if not self.idle():
                raise RuntimeError(f"The model moved to {weight.device} / {weight.dtype} while "
                                   f"{len(self.meta)} rollouts were running: move it between steps.")
            self.engine = None
        if self.engine is None:
            self.engine = Engine(self.model, self.params, self.max_batch_size, max_length=length)
            self.engine.set_policy(self.policy_version)
        self.engine.reserve(length)
        return self.engine

    def submit(self, prompt: Sequence[int], meta: Any = None, seed: int | None = None) -> int:
        """Queue one prompt (token ids); returns its request id. It joins the batch at the next
        `step`; `step` returns it with `meta`. With a `seed` it samples from its own random
        stream, so its answer does not depend on what else runs beside it."""
        context = self.model.config.max_position_embeddings
        engine = self._engine(min(context, len(prompt) + self.params.max_new_tokens))
        request_id = engine.add_request(prompt, seed=seed)
        self.meta[request_id] = meta
        return request_id

    def step(self) -> list[tuple[Any, Completion]]:
        """One engine step (one token for every running request): (meta, completion) of each
        request that finished in it."""
        if self.idle() or self.paused:          # paused: submitted requests wait for resume
            return []
        was_training = self.model.training
        self.model.eval()
        try:
            finished = self.engine.step()
        finally:
            self.model.train(was_training)
        return [(self.meta.pop(c.request_id), c) for c in finished]

    def abort(self, request_ids: Iterable[int]) -> list[tuple[Any, Completion]]:
        """Stop these requests: (meta, partial completion, finish_reason "abort") of each one
        still unfinished; their rows go to the next requests."""
        if self.engine is None:
            return []
        return [(self.meta.pop(c.request_id), c) for c in self.engine.abort(request_ids)]

    def idle(self) -> bool:
        """No request running or waiting: the moment weights may change."""
        return not self.meta

    def set_policy(self, version: int) -> None:
        """The shared model's weights are now version `version`; the next run decodes with them.
        Refused while requests are running; those still waiting start under `version`."""
        if self.engine is not None:
            self.engine.set_policy(version)
        self.policy_version = version

    # --- weight-sync receiver (weight_sync.WeightReceiver) ----------------------------------------
    def pause(self) -> None:
        """A sync begins: from now on no request starts; those submitted meanwhile wait."""
        running = len(self.engine.rows) if self.engine is not None else 0
        if running:
            raise RuntimeError(f"Cannot pause for a weight sync while {running} requests are "
                               f"running: MiMo's rollouts are on-policy, so finish or abort them first.")
        self.paused = True

    def load(self, chunk: list[tuple[str, Any]]) -> None:
        """Copy a chunk of (checkpoint name, tensor) into the model this backend decodes."""
        if not self.paused:
            raise RuntimeError("load() outside a weight sync: call pause() first, so that nothing "
                               "generates on half-loaded weights.")
        load_named(self.model, chunk)

    def resume(self, version: int) -> None:
        """The sync is done: the weights are `version`; waiting requests start under it."""
        self.paused = False
        self.set_policy(version)

    def rollouts(self, prompts: Sequence[Sequence[int]], seed: int) -> Iterator[tuple[int, Completion]]:
        """The whole batch at once; the same completions as a fresh Engine seeded with `seed`."""
        if not prompts:
            return
        if self.paused:
            raise RuntimeError("rollouts() during a weight sync: call resume(version) first.")
        if not self.idle():
            raise RuntimeError(f"rollouts() needs an idle backend, but {len(self.meta)} submitted "
                               f"requests are unfinished: step until idle() or abort them first.")
        context = self.model.config.max_position_embeddings
        engine = self._engine(min(context, max(len(p) for p in prompts) + self.params.max_new_tokens))
        engine.generator.manual_seed(seed)       # the shared random stream, as Engine(seed=seed) starts it
        ids = [self.submit(prompt, meta=i) for i, prompt in enumerate(prompts)]
        try:
            while not self.idle():
                yield from self.step()
        finally:                                 # the caller stopped early: free the rows
            self.abort(ids)
