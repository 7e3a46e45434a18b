"""Weight sync: the trainer's new weights into a rollout engine that holds its own copy.

At 7B the rollouts come from vLLM on GPUs of its own, so after every GRPO step the trainer must
send the policy there (DESIGN.md, "Scaled path"; facts file §1.5). The protocol has three
calls on the receiving side and one stream on the sending side:

    receiver.pause()                     # no request runs from here on; new ones wait
    for chunk in weight_chunks(model):   # [(name, tensor), ...], at most `chunk_bytes` each
        receiver.load(chunk)
    receiver.resume(version)             # waiting requests start, stamped `version`

  - names are the Hugging Face checkpoint's (`model.layers.0.self_attn.q_proj.weight`, ...),
    which are the kit's own parameter names and what vLLM's `load_weights` maps onto its fused
    `qkv_proj` / `gate_up_proj`;
  - the MTP layers (`model.mtp_layers.*`) are never sent: MiMo freezes them in RL, and vLLM's main
    model drops them anyway (its draft model keeps the ones it loaded at start);
  - under FSDP2 each parameter is gathered whole, one at a time (`DTensor.full_tensor()`, a
    collective: every rank walks the same names), and only rank 0 sends; so at most one chunk
    of whole tensors is ever held, never the whole model;
  - a sync happens between steps, while no rollout runs (MiMo's RL is on-policy), and `pause`
    makes sure that nothing generates on half-loaded weights: a request submitted during the
    sync waits and is served after `resume`, under the new version.

`EngineRollout` (the kit's engine) and `VLLMRollout` (vLLM) are receivers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch

from ..train import parallel

MTP_PREFIX = "model.mtp_layers."       # the MTP draft's weights: never sent in RL
CHUNK_BYTES = 512 * 2**20               # tensors per chunk, by bytes (a larger tensor goes alone)


class WeightReceiver(Protocol):
    def pause(self) -> None:
        """Stop starting requests (none may be running); requests submitted from now on wait."""
        ...

    def load(self, chunk: list[tuple[str, torch.Tensor]]) -> None:
        """Copy these whole tensors, named as in the Hugging Face checkpoint, into the weights."""
        ...

    def resume(self, version: int) -> None:
        """The weights are now `version`: start the waiting requests, stamped with it."""
        ...


@dataclass
class SyncReport:
    version: int
    tensors: int = 0
    bytes: int = 0
    chunks: int = 0


def weight_chunks(model, chunk_bytes: int = CHUNK_BYTES,
                  dtype: torch.dtype | None = None) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """The policy's weights as lists of (checkpoint name, whole tensor on the CPU), MTP layers left out.

    A chunk holds consecutive parameters up to `chunk_bytes` (one larger than that goes alone).
    `dtype` converts each tensor (bf16 halves what vLLM receives); None keeps the trainer's.
    Under torchrun every rank must iterate (each parameter is gathered by all ranks together);
    the chunks come out on rank 0 only, the other ranks get empty lists, never yielded.
    """
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be ≥ 1, got {chunk_bytes}.")
    main = parallel.rank() == 0
    chunk, size = [], 0
    for name, param in model.named_parameters():
        if name.startswith(MTP_PREFIX):
            continue
        whole = param.full_tensor() if hasattr(param, "full_tensor") else param   # FSDP2: a collective
        if not main:
            continue
        tensor = whole.detach().to("cpu", dtype=dtype or whole.dtype, copy=True)
        nbytes = tensor.numel() * tensor.element_size()
        if chunk and size + nbytes > chunk_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append((name, tensor))
        size += nbytes
    if chunk:
        yield chunk


def push_weights(model, receiver: WeightReceiver | None, version: int, chunk_bytes: int = CHUNK_BYTES,
                 dtype: torch.dtype | None = None) -> SyncReport:
    """One sync: pause the receiver, stream the weights into it, resume it at `version`.

    Every rank calls it (under FSDP2 the gathering is collective); `receiver` is used on rank 0
    and may be None elsewhere. Returns what was sent (rank 0; zeros on the other ranks).
    """
    main = parallel.rank() == 0
    if main and receiver is None:
        raise ValueError("push_weights needs a receiver on rank 0 (the rollout backend that holds "
                         "its own copy of the weights).")
    report = SyncReport(version)
    if main:
        receiver.pause()
    for chunk in weight_chunks(model, chunk_bytes, dtype):
        receiver.load(chunk)
        report.chunks += 1
        report.tensors += len(chunk)
        report.bytes += sum(t.numel() * t.element_size() for _, t in chunk)
    if main:            # only once every tensor is in: a failed sync leaves the receiver paused
        receiver.resume(version)
    return report


def load_named(model, chunk: list[tuple[str, torch.Tensor]]) -> None:
    """Copy each (checkpoint name, tensor) of `chunk` into `model`'s parameter of that name."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in chunk:
            if name not in params:
                raise KeyError(f"The rollout model has no parameter {name!r}: sender and receiver "
                               f"must hold the same architecture (one config).")
            target = params[name]
            if target.shape != tensor.shape:
                raise ValueError(f"{name} is {tuple(tensor.shape)} in the sync but "
                                 f"{tuple(target.shape)} in the rollout model: one config for both.")
            target.copy_(tensor)
