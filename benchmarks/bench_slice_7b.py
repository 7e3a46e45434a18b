"""MiMo-7B on one GPU: a training slice at the official width, and the full model decoding.

    python benchmarks/bench_slice_7b.py train --layers 4 --seq 4096 --micro-batch 2 --out slice.json
    python benchmarks/bench_slice_7b.py decode --batch 1 64

`train`: MiMo-7B's width (hidden 4,096, 32 heads / 8 KV heads, SwiGLU 11,008, vocabulary
151,680) with `--layers` decoder blocks and its one MTP layer, under FSDP2 (`fully_shard` per
block and MTP layer, then the root, on a mesh of one GPU), bf16 compute with fp32 master weights
and AdamW (`MixedPrecisionPolicy`), compiled per block or as a whole with its loss, with and
without activation checkpointing. Per setting: tokens/s, MFU (6N + 12·L·T·D FLOPs per token over the GPU's dense
bf16 peak, `mimo_lite/scaling.py`) and the peak of allocated memory against
`scaling.memory_per_gpu`, the calculator of notebook 11.

`decode`: the full 36-block model (7.83B parameters) built on the meta device, materialised in
bf16 on the GPU with random weights, generating with the kit's engine (greedy, every row exactly
`--new-tokens` tokens): tokens/s at each batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mimo_lite.config import preset  # noqa: E402
from mimo_lite.model import MiMoForCausalLM  # noqa: E402
from mimo_lite.scaling import GiB, PEAK_BF16, memory_per_gpu, train_flops_per_token  # noqa: E402


def one_gpu_group() -> None:
    """A process group of one, so that FSDP2 shards over a mesh of one GPU as it would over N."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    if not dist.is_initialized():
        dist.init_process_group("nccl", rank=0, world_size=1)
    torch.cuda.set_device(0)


def slice_model(config, checkpointing: bool, compile_: str = "blocks", fsdp: bool = True):
    """The slice, built on the meta device and materialised under FSDP2 (as `parallel.build_sharded`
    does at N GPUs; `parallel.shard` leaves a one-process run whole, so the units are made here)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    with torch.device("meta"):
        model = MiMoForCausalLM(config)
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    model.model.activation_checkpointing = checkpointing   # the trainers' switch (train/run.py)
    for blocks in (model.model.layers, model.model.mtp_layers):
        for block in blocks:
            if compile_ == "blocks":
                block.compile()
            if fsdp:
                fully_shard(block, mp_policy=policy)
    if fsdp:
        fully_shard(model, mp_policy=policy)
    model.to_empty(device="cuda")
    random_weights(model)
    if compile_ == "model":                            # blocks, head and loss in one graph
        model.compile()
    return model


def random_weights(model) -> None:
    """Weights of the right scale for timing (what they are does not matter here)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p = p.to_local() if hasattr(p, "to_local") else p
            if "norm" in name:
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02)


def train(args) -> None:
    one_gpu_group()
    config = preset("mimo_7b", num_hidden_layers=args.layers)
    peak = PEAK_BF16[args.gpu]
    print(f"MiMo-7B width, {args.layers} blocks + 1 MTP layer, micro-batch {args.micro_batch} × "
          f"{args.seq} tokens, bf16 compute / fp32 master weights, FSDP2 {'on' if args.fsdp else 'off'} "
          f"(one GPU), torch {torch.__version__}")
    print("\n| compiled | activation checkpointing | tok/s | MFU | peak allocated | calculator | "
          "measured / calculator |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for compile_, checkpointing in [(c, a) for c in args.compile for a in args.checkpointing]:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        model = slice_model(config, checkpointing, compile_, args.fsdp)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=not args.fsdp)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), fused=True)
        g = torch.Generator(device="cuda").manual_seed(1)
        times = []
        for step in range(args.warmup + args.steps):
            batch = torch.randint(0, config.vocab_size, (args.micro_batch, args.seq), device="cuda",
                                  generator=g)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with autocast:                             # without FSDP2's policy: autocast to bf16
                loss = model(batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            if step >= args.warmup:
                times.append(time.perf_counter() - t0)
        tps = args.micro_batch * args.seq / statistics.median(times)
        mfu = tps * train_flops_per_token(config, args.seq) / peak
        measured = torch.cuda.max_memory_allocated()
        predicted = memory_per_gpu(config, 1, args.seq, args.micro_batch, checkpointing)["total"]
        print(f"| {compile_} | {'on' if checkpointing else 'off'} | {tps:,.0f} | {mfu:.1%} | "
              f"{measured / GiB:.1f} GiB | {predicted / GiB:.1f} GiB | {measured / predicted:.2f} |", flush=True)
        rows.append(dict(compiled=compile_, checkpointing=checkpointing, tokens_per_s=tps, mfu=mfu,
                         peak_bytes=measured, calculator_bytes=predicted))
        del model, optimizer
    dist.destroy_process_group()
    if args.out:
        Path(args.out).write_text(json.dumps(dict(
            gpu=torch.cuda.get_device_name(), torch=torch.__version__, layers=args.layers, seq=args.seq,
            micro_batch=args.micro_batch, fsdp=args.fsdp, rows=rows), indent=1) + "\n")


def decode(args) -> None:
    from mimo_lite.infer import SamplingParams, generate

    config = preset("mimo_7b")
    t0 = time.perf_counter()
    with torch.device("meta"):
        model = MiMoForCausalLM(config)
    model = model.to(dtype=torch.bfloat16).to_empty(device="cuda").eval()
    random_weights(model)
    built = time.perf_counter() - t0
    n = sum(p.numel() for p in model.parameters())
    print(f"MiMo-7B full depth: {n:,} parameters, built on meta and materialised in bf16 in {built:.1f} s; "
          f"{torch.cuda.memory_allocated() / GiB:.1f} GiB; torch {torch.__version__}")
    print("\n| batch | new tokens per row | tok/s | peak allocated |")
    print("|---|---|---|---|")
    prompt = torch.randint(0, config.vocab_size, (args.prompt,)).tolist()
    params = SamplingParams(temperature=0, max_new_tokens=args.new_tokens)
    for b in args.batch:
        with torch.inference_mode():
            generate(model, [prompt] * b, params)                         # warm-up
            torch.cuda.reset_peak_memory_stats()
            best = float("inf")
            for _ in range(args.repeats):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                out = generate(model, [prompt] * b, params)
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
        tokens = sum(len(c.tokens) for c in out)
        print(f"| {b} | {args.new_tokens} | {tokens / best:,.0f} | "
              f"{torch.cuda.max_memory_allocated() / GiB:.1f} GiB |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train")
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--seq", type=int, default=4096)
    t.add_argument("--micro-batch", type=int, default=2)
    t.add_argument("--steps", type=int, default=8)
    t.add_argument("--warmup", type=int, default=3)
    t.add_argument("--checkpointing", default="off,on",
                   type=lambda s: [x == "on" for x in s.split(",")])
    t.add_argument("--compile", default="blocks,model", type=lambda s: s.split(","),
                   help="comma-separated: blocks (each block, torchtitan's way), model (the whole "
                        "model and its loss, as the kit's trainers do), none")
    t.add_argument("--fsdp", default=True, type=lambda s: s == "on", help="on (default) or off")
    t.add_argument("--gpu", default="H200")
    t.add_argument("--out", default="", help="also write the rows to this JSON file")
    d = sub.add_parser("decode")
    d.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    d.add_argument("--new-tokens", type=int, default=128)
    d.add_argument("--prompt", type=int, default=16)
    d.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    train(args) if args.what == "train" else decode(args)


if __name__ == "__main__":
    main()
