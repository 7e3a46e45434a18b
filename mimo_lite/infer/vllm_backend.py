"""vLLM as the rollout backend at 7B: the `EngineRollout` interface on vLLM's async engine.

The trainer and the Seamless scheduler (`rl/seamless.py`) talk to a backend through
`rollouts(prompts, seed)` or `submit` / `step` / `abort` / `idle`, and `set_policy(version)`;
`VLLMRollout` offers the same calls on vLLM's `AsyncLLM` (vLLM 0.33.0, scaled/constraints.txt)
serving the exported checkpoint on GPUs of its own ("server mode"):

  - each request is one `AsyncLLM.generate` call (token ids in, `RequestOutputKind.FINAL_ONLY`:
    one output when it ends) running on an asyncio loop in a thread of its own; `step()` waits
    until at least one request has finished and returns every finished one;
  - `abort(ids)` calls `AsyncLLM.abort`: vLLM answers each with its tokens so far, finish reason
    "abort", as the kit's engine does;
  - log-probs: `SamplingParams(logprobs=0)` returns the sampled token's own, and the engine is
    built with `logprobs_mode="processed_logprobs"`, i.e. log softmax(z / τ) — the kit's value
    (`infer/sampling.py`) whenever top-k and top-p keep every token, as MiMo's RL rollouts do
    (τ = 1.0, top-p 1.0). With top-p < 1 vLLM renormalises over the kept tokens, the kit does not;
  - weights: it is a weight-sync receiver (`rl/weight_sync.py`). `pause()` holds new requests here
    (none may be running: on-policy) and pauses vLLM's scheduler (`pause_generation(mode="keep")`,
    caches cleared: no prefix computed with the old weights is reused); `load(chunk)` runs
    `load_weights(chunk)` on the model in every vLLM worker through `collective_rpc` (the chunk
    as safetensors bytes) and the worker extension `WeightLoader`; `resume(version)` resumes vLLM
    and sends the held requests, stamped `version`;
  - evaluation may switch on MTP speculative decoding (`speculative=True`): vLLM's MiMo MTP draft
    (`speculative_config={"method": "mtp", "num_speculative_tokens": 1}`; "mimo_mtp" is an older
    name vLLM rewrites to "mtp"). RL rollouts leave it off (facts file §1.4).

vLLM is imported only inside `serve` and the calls that build vLLM objects: the kit imports
without it. Where vLLM is not installed, `VLLMRollout.serve` says how to get it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import safetensors.torch

from .engine import Completion
from .sampling import SamplingParams

SPECULATIVE_CONFIG = {"method": "mtp", "num_speculative_tokens": 1}    # MiMoMTP predicts one token


class WeightLoader:
    """vLLM worker extension (`worker_extension_cls`): what `collective_rpc` calls in each worker.

    A sync is vLLM's own in-place reload, spread over the calls of the weight-sync protocol:
    `begin_mimo_sync` puts every layer in reload mode (its loaders buffer what arrives), each
    `load_mimo_weights` feeds a chunk through vLLM's MiMo `load_weights` (names mapped onto the fused
    layers, q/k/v → qkv_proj and gate/up → gate_up_proj, and each worker's TP shard), a layer is
    processed into its kernel format once all of its weights are in, and `finish_mimo_sync`
    processes the rest. A plain `load_weights` after start-up fails wherever vLLM already repacked
    a layer for its kernels (every linear layer on the CPU build), and a layer whose tensors fall in
    two chunks must wait for both.
    """

    def begin_mimo_sync(self) -> None:
        from vllm.config import set_current_vllm_config
        from vllm.model_executor.model_loader.reload import initialize_layerwise_reload
        with set_current_vllm_config(self.vllm_config):
            initialize_layerwise_reload(self.model_runner.get_model())

    def load_mimo_weights(self, packed: bytes) -> int:
        """Load a chunk (`pack_chunk`'s bytes) into this worker's model."""
        from vllm.config import set_current_vllm_config
        chunk = list(safetensors.torch.load(packed).items())
        with set_current_vllm_config(self.vllm_config):
            self.model_runner.get_model().load_weights(weights=chunk)
        return len(chunk)

    def finish_mimo_sync(self) -> None:
        from vllm.config import set_current_vllm_config
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload
        with set_current_vllm_config(self.vllm_config):
            finalize_layerwise_reload(self.model_runner.get_model(), self.vllm_config.model_config)


def pack_chunk(chunk: list[tuple[str, Any]]) -> bytes:
    """A chunk of (checkpoint name, tensor) as safetensors bytes: what crosses vLLM's RPC. Tensors
    themselves do not: the engine core decodes them onto buffers its shared-memory broadcast to
    the workers cannot pickle (vLLM 0.32 CPU: "cannot pickle memoryview objects")."""
    return safetensors.torch.save({name: tensor.detach().to("cpu").contiguous() for name, tensor in chunk})


def _vllm():
    try:
        import vllm
    except ImportError as err:
        raise ImportError("The vLLM rollout backend needs vLLM: build the scaled environment with "
                          "`make scaled-env` (vLLM 0.33.0, scaled/constraints.txt).") from err
    return vllm


class VLLMRollout:
    """Rollouts from a vLLM engine; the calls of `EngineRollout` (see its docstring).

        backend = VLLMRollout.serve("runs/mimo_7b/sft", eos_token_id=tokenizer.eos_token_id,
                                    max_new_tokens=32768, max_batch_size=512,
                                    engine_args=dict(tensor_parallel_size=2))
        for i, completion in backend.rollouts(prompts, seed):
            ...
        push_weights(model, backend, version=step)      # after each training step

    `engine` is a function that builds the engine (vLLM's `AsyncLLM`, or anything with its
    methods); it is called on the backend's own event loop.
    """

    def __init__(self, engine, eos_token_id: int, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 96, max_batch_size: int = 64):
        self.params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                     stop_token_ids=(eos_token_id,))
        self.max_batch_size = max_batch_size
        self.policy_version = 0
        self.paused = False
        self.meta: dict[int, Any] = {}          # request id → what its submitter attached
        self.held: list[tuple[int, list[int], int | None]] = []   # submitted during a sync
        self.running: dict[int, Completion] = {}                    # sent to vLLM, not yet returned
        self.finished: queue.Queue = queue.Queue()                  # from the loop: Completion, or an error
        self.ready: dict[int, Completion] = {}                      # back from vLLM, not yet returned
        self.next_id = 0
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="vllm-rollout", daemon=True).start()
        self.engine = self._run(engine)

    @classmethod
    def serve(cls, model: str, eos_token_id: int, temperature: float = 1.0, top_p: float = 1.0,
              max_new_tokens: int = 96, max_batch_size: int = 64, speculative: bool = False,
              engine_args: dict | None = None) -> VLLMRollout:
        """A vLLM engine on the checkpoint in `model` (an `export_hf` / `save_pretrained` folder).

        `engine_args`: vLLM's `AsyncEngineArgs` fields (tensor_parallel_size, gpu_memory_utilization,
        max_model_len, ...); `speculative` turns on MiMo's MTP draft (evaluation only).
        """
        _vllm()
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args = dict(model=model, dtype="bfloat16", max_num_seqs=max_batch_size,
                    logprobs_mode="processed_logprobs",
                    worker_extension_cls=f"{__name__}.{WeightLoader.__name__}",
                    **(engine_args or {}))
        if speculative:
            args["speculative_config"] = dict(SPECULATIVE_CONFIG)
        return cls(lambda: AsyncLLM.from_engine_args(AsyncEngineArgs(**args)), eos_token_id,
                   temperature, top_p, max_new_tokens, max_batch_size)

    # --- the event loop's side ------------------------------------------------------------------
    def _run(self, function):
        """`function()` called on the backend's loop thread; its result here."""
        async def call():
            return function()
        return self._call(call())

    def _call(self, coroutine):
        """Run `coroutine` on the backend's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def _sampling(self, seed: int | None):
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.sampling_params import RequestOutputKind

        p = self.params
        return VLLMSamplingParams(n=1, temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_new_tokens,
                                  stop_token_ids=list(p.stop_token_ids), seed=seed, logprobs=0,
                                  detokenize=False, output_kind=RequestOutputKind.FINAL_ONLY)

    def _send(self, request_id: int, prompt: list[int], seed: int | None) -> None:
        """Start one request in vLLM (on the loop thread), under the current policy version."""
        completion = Completion(request_id, prompt, policy_version=self.policy_version)
        self.running[request_id] = completion
        sampling = self._sampling(seed)

        async def generate():
            try:
                async for out in self.engine.generate({"prompt_token_ids": prompt}, sampling, str(request_id)):
                    if out.finished:
                        result = out.outputs[0]
                        completion.tokens = list(result.token_ids)
                        # logprobs[i]: {token id: Logprob} at position i, the sampled token's among them
                        completion.logprobs = [result.logprobs[i][t].logprob for i, t in enumerate(completion.tokens)]
                        completion.finish_reason = result.finish_reason
            except Exception as err:                         # the engine died: tell step()
                self.finished.put(err)
                return
            self.finished.put(completion)

        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(generate()))

    # --- the EngineRollout interface -------------------------------------------------------------
    def submit(self, prompt: Sequence[int], meta: Any = None, seed: int | None = None) -> int:
        """Queue one prompt (token ids); returns its request id, which `step` returns with `meta`.
        With a `seed` it samples from its own random stream (vLLM's per-request seed)."""
        prompt = list(prompt)
        if not prompt:
            raise ValueError("A prompt must hold at least one token.")
        request_id, self.next_id = self.next_id, self.next_id + 1
        self.meta[request_id] = meta
        if self.paused:
            self.held.append((request_id, prompt, seed))
        else:
            self._send(request_id, prompt, seed)
        return request_id

    def _receive(self, block: bool) -> None:
        """Move what vLLM has returned into `ready`; with `block`, wait for one return first."""
        while block or not self.finished.empty():
            c = self.finished.get()
            block = False
            if isinstance(c, Exception):
                raise RuntimeError("vLLM failed while generating a rollout (see the error above).") from c
            self.ready[c.request_id] = c

    def _hand_out(self, request_ids: Iterable[int]) -> list[tuple[Any, Completion]]:
        out = []
        for rid in request_ids:
            del self.running[rid]
            out.append((self.meta.pop(rid), self.ready.pop(rid)))
        return out

    def step(self) -> list[tuple[Any, Completion]]:
        """(meta, completion) of the requests that finished since the last call; waits for at
        least one when some are running (none run while paused)."""
        if not self.running:
            return []
        self._receive(block=not self.ready)
        return self._hand_out(list(self.ready))

    def abort(self, request_ids: Iterable[int]) -> list[tuple[Any, Completion]]:
        """Stop these requests: (meta, completion) of each one not yet returned by `step`, with
        the tokens it had when vLLM stopped it (finish_reason "abort"; one that ended just before
        keeps its own reason). Ids already returned (or unknown) are skipped."""
        ids = {i for i in request_ids if i in self.meta}
        out = [(self.meta.pop(rid), Completion(rid, prompt, finish_reason="abort"))
               for rid, prompt, _ in self.held if rid in ids]               # never sent: no tokens
        self.held = [h for h in self.held if h[0] not in ids]
        sent = [i for i in self.running if i in ids]
        if sent:
            self._call(self.engine.abort([str(i) for i in sent]))
            while not all(i in self.ready for i in sent):    # vLLM answers each with its tokens so far
                self._receive(block=True)
        return out + self._hand_out(sent)

    def idle(self) -> bool:
        """No request running or waiting: the moment weights may change."""
        return not self.meta

    def set_policy(self, version: int) -> None:
        """Stamp requests sent from now on with `version`. vLLM holds its own weights: a trainer
        changes them with `weight_sync.push_weights`, which ends with `resume(version)`."""
        if self.running:
            raise RuntimeError(f"Cannot change the policy version to {version} while "
                               f"{len(self.running)} requests are running: finish or abort them first.")
        self.policy_version = version

    def rollouts(self, prompts: Sequence[Sequence[int]], seed: int) -> Iterator[tuple[int, Completion]]:
        """The whole batch at once, prompt i with seed `seed`·P + i (P prompts): (i, completion)
        as each finishes."""
        if not self.idle():
            raise RuntimeError(f"rollouts() needs an idle backend, but {len(self.meta)} submitted "
                               f"requests are unfinished: step until idle() or abort them first.")
        if self.paused:
            raise RuntimeError("rollouts() during a weight sync: call resume(version) first.")
        ids = [self.submit(p, meta=i, seed=seed * len(prompts) + i) for i, p in enumerate(prompts)]
        try:
            while not self.idle():
                yield from self.step()
        finally:                                 # the caller stopped early: free vLLM's rows
            self.abort(ids)

    # --- weight-sync receiver (weight_sync.WeightReceiver) ----------------------------------------
    def pause(self) -> None:
        """A sync begins: vLLM's scheduler stops and its caches are cleared; new requests wait here."""
        if self.running:
            raise RuntimeError(f"Cannot pause for a weight sync while {len(self.running)} requests are "
                               f"running: MiMo's rollouts are on-policy, so finish or abort them first.")
        self.paused = True
        self._call(self.engine.pause_generation(mode="keep", clear_cache=True))
        self._call(self.engine.collective_rpc("begin_mimo_sync"))

    def load(self, chunk: list[tuple[str, Any]]) -> None:
        """Copy a chunk of (checkpoint name, tensor) into the model of every vLLM worker."""
        if not self.paused:
            raise RuntimeError("load() outside a weight sync: call pause() first, so that nothing "
                               "generates on half-loaded weights.")
        self._call(self.engine.collective_rpc("load_mimo_weights", args=(pack_chunk(chunk),)))

    def resume(self, version: int) -> None:
        """The sync is done: vLLM's weights are `version`; the held requests start under it."""
        self._call(self.engine.collective_rpc("finish_mimo_sync"))
        self._call(self.engine.resume_generation())
        self.paused = False
        self.policy_version = version
        held, self.held = self.held, []
        for request_id, prompt, seed in held:
            self._send(request_id, prompt, seed)

    def close(self) -> None:
        """Shut the engine down (its GPU workers exit) and stop the loop thread."""
        self._run(self.engine.shutdown)
        self.loop.call_soon_threadsafe(self.loop.stop)
