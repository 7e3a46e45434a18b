"""Data parallelism for the scaled path: torchrun + FSDP2, with nothing to change at world size 1.

Under `torchrun --nproc_per_node N`, `init()` joins the process group and `shard(model)` applies
`fully_shard` to every decoder block and MTP layer and then to the whole model (parameters,
gradients and optimiser state split N ways; ZeRO-3 style). Each rank reads its own slice of every
batch; FSDP's reduce-scatter averages the gradients. Without torchrun both are no-ops.

A run from scratch gets its model from `build`: in one process the model is built whole, as it
always is in the notebooks; under torchrun it is built on the meta device (shapes, no memory),
sharded, and each rank fills only its own shards (`build_sharded`), with the same initial weights
at every world size. A run that starts from a trained model (SFT, GRPO) gets it from
`load_pretrained`: whole in one process, sharded under torchrun, each rank reading only what
its shards need.

An entry point that runs under torchrun wraps its work in `with session():`, the work itself in a
function. At its end every rank waits for the others, leaves the process group and lets go of it
(`close`), so the backend's worker threads end there and not while the interpreter shuts down:
a gloo thread still running then can abort a rank ("terminate called without an active
exception"). A sharded model kept in a module-level variable keeps the group, and its threads, alive.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import os
from pathlib import Path

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


@contextlib.contextmanager
def session():
    """`init()` for a `with` block, yielding (rank, world size); when the block ends, the process
    group it joined is closed (`close`). An exception leaves the group to torchrun, which stops
    the other ranks: a barrier or a teardown there could wait for them forever."""
    joined = not dist.is_initialized()
    yield init()
    if joined:
        close()


def close() -> None:
    """Wait for every rank, and so for every collective issued before, then leave the process
    group and drop the references that would keep it alive past the run: the device mesh's (DTensor
    caches the mesh; newer torch's mesh holds its groups) and reference cycles the finished work
    left. Nothing in one process."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        for made in _mesh:
            getattr(made, "_pg_registry", {}).clear()
        _mesh.clear()
        _side_group.clear()
        gc.collect()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def shard(model, dtype=torch.float32):
    """FSDP2: one unit per decoder block and MTP layer, then the root (embeddings, norm, head).

    With `dtype` bfloat16 the units compute in bf16 (`MixedPrecisionPolicy`: parameters gathered
    in bf16, gradients reduced in fp32), while the sharded master weights and AdamW stay fp32.
    """
    if world_size() == 1:
        return model
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    if isinstance(model, FSDPModule):                 # sharded already (the caller did it)
        return model
    policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if dtype == torch.bfloat16 else MixedPrecisionPolicy())
    for block in [*model.model.layers, *model.model.mtp_layers]:
        fully_shard(block, mesh=mesh(), mp_policy=policy)
    fully_shard(model, mesh=mesh(), mp_policy=policy)
    return model


_mesh = []


def mesh():
    """The 1-D device mesh over all ranks that every FSDP unit shards on; made once."""
    if not _mesh:
        from torch.distributed.device_mesh import init_device_mesh
        _mesh.append(init_device_mesh("cuda" if torch.cuda.is_available() else "cpu", (world_size(),)))
    return _mesh[0]


def build(config, seed: int, device, dtype=torch.float32):
    """The model of a run from scratch, initialised from `seed`.

    In one process: `MiMoForCausalLM(config)` after `torch.manual_seed(seed)`, as the notebooks
    have always built it. Under torchrun: `build_sharded`, already sharded.
    """
    from ..model import MiMoForCausalLM

    if not dist.is_initialized():
        torch.manual_seed(seed)
        return MiMoForCausalLM(config).to(device)
    return build_sharded(config, seed, device, dtype)


def build_sharded(config, seed: int, device, dtype=torch.float32):
    """Meta-device initialisation: no rank ever builds the whole model.

    The model is built on the meta device (every shape, no storage) and sharded; `to_empty` then
    gives each rank storage for its own shards only, on `device`. The weights come from the
    model's own `_init_weights`, applied to one module's whole weights at a time (at most one
    matrix, e.g. the embedding, is ever whole): every rank draws the same numbers from one seeded
    stream, in the model's module order, and keeps its shard of them. So the initial weights are
    the same at every world size, 1 included (where nothing is sharded). They differ from the
    one-process `build`, whose constructor draws other numbers first.
    """
    from torch.distributed.tensor import DTensor, distribute_tensor

    from ..model import MiMoForCausalLM

    with torch.device("meta"):
        model = MiMoForCausalLM(config)
    blueprint = copy.deepcopy(model)                  # unsharded, on meta: it costs no memory
    shard(model, dtype)
    model.to_empty(device=device)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, module in blueprint.named_modules():
            if not list(module.parameters(recurse=False)):
                continue
            module.to_empty(device=device, recurse=False)   # this module's weights, whole
            model._init_weights(module)
            for key, whole in module.named_parameters(recurse=False):
                target = model.get_parameter(f"{name}.{key}")
                if isinstance(target, DTensor):            # this rank's shard of it
                    whole = distribute_tensor(whole, target.device_mesh, target.placements,
                                              src_data_rank=None)
                target.copy_(whole)
            module.to_empty(device="meta", recurse=False)
    return model


def load_pretrained(folder, device, dtype=torch.float32):
    """The model `save_pretrained` left in `folder`, on `device` (fp32 master weights).

    In one process: `MiMoForCausalLM.from_pretrained(folder).to(device)`, as the notebooks have
    always loaded it. Under torchrun no rank holds it whole: it is built on the meta device and
    sharded as `build_sharded` does, then each rank reads the safetensors file(s) one tensor at
    a time and keeps its shard of each (at most one matrix, e.g. the embedding, is ever whole,
    in CPU memory).
    """
    from safetensors import safe_open
    from torch.distributed.tensor import DTensor, distribute_tensor

    from ..config import MiMoConfig
    from ..model import MiMoForCausalLM

    if init()[1] == 1:
        return MiMoForCausalLM.from_pretrained(folder).to(device)
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"             # several files: which holds what
    where = json.loads(index.read_text())["weight_map"] if index.exists() else {}
    with torch.device("meta"):
        model = MiMoForCausalLM(MiMoConfig.from_pretrained(folder))
    shard(model, dtype)
    model.to_empty(device=device)
    files = {}
    with torch.no_grad():
        for name, target in model.named_parameters():
            file = where.get(name, "model.safetensors")
            if file not in files:
                files[file] = safe_open(folder / file, framework="pt", device="cpu")
            whole = files[file].get_tensor(name).to(device=device, dtype=target.dtype)
            if isinstance(target, DTensor):                        # this rank's shard of it
                whole = distribute_tensor(whole, target.device_mesh, target.placements,
                                          src_data_rank=None)
            target.copy_(whole)
    return model


def full_state_dict(model) -> dict:
    """Every parameter, whole and on the CPU (gathered from the shards when sharded)."""
    if world_size() == 1:
        return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def whole_model(model, into=None):
    """`model` whole on rank 0, None on the other ranks (every rank calls it: the weights are
    gathered from the shards). In one process `model` itself; under torchrun a plain copy on the
    CPU, or the gathered weights loaded into `into`, a copy made before.
    """
    if world_size() == 1:
        return model
    from ..model import MiMoForCausalLM

    weights = full_state_dict(model)
    if rank() != 0:
        return None
    into = into if into is not None else MiMoForCausalLM(model.config)
    into.load_state_dict(weights)
    return into


def load_full_state_dict(model, state: dict) -> None:
    if world_size() == 1:
        model.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def load_optimizer_state(model, optimizer, state: dict) -> None:
    if world_size() == 1:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `values` over all ranks (a CPU tensor; itself in one process)."""
    if world_size() == 1:
        return values
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    total = values.to(device)
    dist.all_reduce(total)
    return total.cpu()


def gather(value) -> list:
    """Every rank's `value` (any picklable object), in rank order."""
    if world_size() == 1:
        return [value]
    values = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def broadcast(value):
    """Rank 0's `value` (any picklable object) on every rank; `value` itself in one process."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


_side_group = []


def side_group():
    """A gloo process group beside the training's, for collectives of a background thread
    (asynchronous checkpoints); made once, by every rank at the same call."""
    if not _side_group:
        _side_group.append(dist.new_group(backend="gloo"))
    return _side_group[0]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
