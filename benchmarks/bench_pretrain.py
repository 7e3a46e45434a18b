"""Training throughput: mimo-lite vs transformers' Qwen2ForCausalLM, same shape, same batches.

    python benchmarks/bench_pretrain.py                       # CPU, toy size, fp32
    python benchmarks/bench_pretrain.py --size gpu --device cuda --dtype bfloat16 --compile

Both models get identical weights and the same batches, and each optimiser step (forward,
backward, AdamW) is timed alternately in one process. mimo-lite runs twice: main stack only
(the same computation as Qwen2) and with its MTP layer and loss (what pre-training runs).
On CUDA it also prints MFU: achieved FLOP/s over the GPU's bf16 dense peak.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mimo_lite.config import preset
from mimo_lite.model import MiMoForCausalLM, qwen2_twin
from mimo_lite.scaling import PEAK_BF16, train_flops_per_token


def timed_steps(model, batches, steps, device, dtype, compile_, mode=None):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=device.type == "cuda")
    fwd = torch.compile(model, mode=mode) if compile_ else model
    autocast = torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)

    def step(batch):
        with autocast:
            loss = fwd(batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for b in batches[:3]:                     # warm-up (and compilation)
        step(b)
    times = []
    for b in batches[:steps]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step(b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="toy")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--mode", default=None,
                    help="torch.compile mode for every model, e.g. max-autotune-no-cudagraphs")
    args = ap.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    torch.manual_seed(0)
    cfg = preset(args.size)
    ours_mtp = MiMoForCausalLM(cfg).to(device)
    ours = MiMoForCausalLM(preset(args.size, num_nextn_predict_layers=0)).to(device)
    ours.load_state_dict({k: v for k, v in ours_mtp.state_dict().items() if "mtp_layers" not in k})
    theirs = qwen2_twin(ours).train()
    batches = [torch.randint(0, cfg.vocab_size, (args.batch, args.seq), device=device)
               for _ in range(args.steps + 3)]
    runs = {"transformers Qwen2": theirs, "mimo-lite (main stack)": ours, "mimo-lite (+MTP layer & loss)": ours_mtp}
    results = {name: [] for name in runs}
    for _ in range(args.rounds):                       # alternate, so drift hits all alike
        for name, model in runs.items():
            results[name] += timed_steps(model, batches, args.steps, device, dtype, args.compile,
                                         args.mode)
    tokens = args.batch * args.seq
    base = tokens / statistics.median(results["transformers Qwen2"])
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else None
    peak = next((v for k, v in PEAK_BF16.items() if gpu and k in gpu), None)
    print(f"size={args.size} device={device} {gpu or ''} dtype={args.dtype} compile={args.compile} "
          f"mode={args.mode} "
          f"batch={args.batch}x{args.seq} threads={torch.get_num_threads()} "
          f"params={sum(p.numel() for p in ours.parameters()):,}")
    for name, times in results.items():
        tps = tokens / statistics.median(times)
        line = f"  {name:<32} {tps:>12,.0f} tok/s   ratio vs transformers {tps / base:5.2f}x"
        if peak:
            line += f"   MFU {tps * train_flops_per_token(ours.config, args.seq) / peak:5.1%}"
        print(line)


if __name__ == "__main__":
    main()
