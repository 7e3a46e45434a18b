"""Data parallelism for the scaled path: torchrun + FSDP2, with nothing to change at world size 1.

Under `torchrun --nproc_per_node N`, `init()` joins the process group and `shard(model)` applies
`fully_shard` to every decoder block and MTP layer and then to the whole model (parameters,
gradients and optimiser state split N ways; ZeRO-3 style). Each rank reads its own slice of every
batch; FSDP's reduce-scatter averages the gradients. Without torchrun both are no-ops.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init() -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun."""
    if "RANK" in os.environ and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return rank(), world_size()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def shard(model):
    """FSDP2: one unit per decoder block and MTP layer, then the root (embeddings, norm, head)."""
    if world_size() == 1:
        return model
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if isinstance(model, FSDPModule):                 # sharded already (the caller did it)
        return model

    for block in [*model.model.layers, *model.model.mtp_layers]:
        fully_shard(block)
    fully_shard(model)
    return model


def full_state_dict(model) -> dict:
    """Every parameter, whole and on the CPU (gathered from the shards when sharded)."""
    if world_size() == 1:
        return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_state_dict(model, state: dict) -> None:
    if world_size() == 1:
        model.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def optimizer_state(model, optimizer) -> dict:
    if world_size() == 1:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
    return get_optimizer_state_dict(model, optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model, optimizer, state: dict) -> None:
    if world_size() == 1:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
