"""What the trainers' inductor options cost: compiled training steps with inductor's defaults
against `train.run.compile_options()` (mix-order reduction off), same model, same batches.

    python benchmarks/bench_compile_options.py                 # CUDA: the gpu model, bf16

The option is off because, with the MTP loss, inductor's mix-order reduction stops the first
compiled backward at one sequence per micro-batch (see `compile_options`). At 16 sequences both
compile, so their speeds can be compared: each is timed over 10 steps, alternately, 3 rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mimo_lite.config import preset
from mimo_lite.model import MiMoForCausalLM
from mimo_lite.train.run import compile_options


def compiled_step(config, state, options):
    """A compiled bf16 optimiser step of a fresh model holding `state`."""
    model = MiMoForCausalLM(config).cuda()
    model.load_state_dict(state)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    forward = torch.compile(model, options=options)

    def step(batch):
        with torch.autocast("cuda", torch.bfloat16):
            loss = forward(batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="gpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_compile_options needs a CUDA GPU (it times inductor's Triton kernels).")
    torch.manual_seed(0)
    config = preset(args.size)
    state = MiMoForCausalLM(config).state_dict()
    batches = [torch.randint(0, config.vocab_size, (args.batch, args.seq), device="cuda") for _ in range(4)]
    steps = {"inductor defaults": compiled_step(config, state, {}),
             "kit (compile_options)": compiled_step(config, state, compile_options())}
    for step in steps.values():                     # compile and warm up
        for b in batches[:2]:
            step(b)
    rates = {k: [] for k in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for i in range(10):
                step(batches[i % len(batches)])
            torch.cuda.synchronize()
            rates[name].append(args.batch * args.seq * 10 / (time.perf_counter() - t0))
    for name, r in rates.items():
        print(f"{name:<22} {statistics.median(r):>10,.0f} tokens/s (median of {args.rounds}; {min(r):,.0f}–{max(r):,.0f})")
    kit, defaults = (statistics.median(rates[k]) for k in ("kit (compile_options)", "inductor defaults"))
    print(f"kit / defaults: {kit / defaults:.3f}")


if __name__ == "__main__":
    main()
