"""The rollout interface: give prompts, get completions (token ids and log-probs) as they finish.

The GRPO trainer sees generation only through `RolloutBackend`, so the synchronous loop here can
give way to a Seamless Rollout scheduler (report §3.4.1, notebook 09) or to vLLM at scale without
touching the trainer. A backend reports each completion the moment it ends, which is what lets
rewards be computed while the longer answers are still being generated ("continuous rollout").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from ..infer import Completion, Engine, SamplingParams


class RolloutBackend(Protocol):
    def rollouts(self, prompts: Sequence[Sequence[int]], seed: int) -> Iterator[tuple[int, Completion]]:
        """Generate one completion per prompt (token ids); yield (prompt index, completion) as
        each finishes. `Completion.tokens` and `.logprobs` are the sampled ids and log π_old."""
        ...


class EngineRollout:
    """The kit's PyTorch backend: the continuous-batching `Engine` on the policy being trained.

    It shares the trainer's model object, so the rollout policy is always the current one
    (at scale a backend would receive the new weights after each step instead).
    """

    def __init__(self, model, tokenizer, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 96, max_batch_size: int = 64):
        self.model, self.tokenizer = model, tokenizer
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.max_batch_size = max_batch_size

    def rollouts(self, prompts: Sequence[Sequence[int]], seed: int) -> Iterator[tuple[int, Completion]]:
        if not prompts:
            return
        params = SamplingParams(temperature=self.temperature, top_p=self.top_p,
                                max_new_tokens=self.max_new_tokens,
                                stop_token_ids=(self.tokenizer.eos_token_id,), seed=seed)
        longest = max(len(p) for p in prompts)
        context = self.model.config.max_position_embeddings
        was_training = self.model.training
        self.model.eval()
        try:
            engine = Engine(self.model, params, max_batch_size=min(self.max_batch_size, len(prompts)),
                            max_length=min(context, longest + self.max_new_tokens), tokenizer=None)
            for i, prompt in enumerate(prompts):
                engine.add_request(prompt, request_id=i)
            for completion in engine.run():
                yield completion.request_id, completion
        finally:
            self.model.train(was_training)
