"""When does the toy model learn to copy from its context? The precondition of any needle probe.

    python benchmarks/probe_copy_phase.py --share 1.0 --steps 1500 --every 100        # ~40 s on one GPU
    python benchmarks/probe_copy_phase.py --share 0.25 --steps 2400 --every 300
    python benchmarks/probe_copy_phase.py --share 0 --steps 4000 --rows 8 --every 500
    python benchmarks/probe_copy_phase.py --profile gpu --bf16 --share 0 --steps 900 --every 150   # gpu size

Trains the profile's architecture (`toy` unless `--profile`) from scratch at stage 1's context
(128 tokens at toy), on stage 1's packed rows of the profile's corpus (built if missing), with a
share `--share` of each batch replaced by rows that are nothing but a random span of 8-32 tokens
repeated to the end: rows that can only be predicted by copying. Every `--every` steps it runs
notebook 04's copy probe (`mimo_lite.eval.long_context.copy_probe`: a random 8-token span in
held-out text, repeated d = 1/4 and 3/4 of the context later: 32 and 96 tokens at toy) and
prints top-1 on the repeat and the loss gain over the first occurrence. Copying from context is
learnt in a sudden step after a plateau (the induction-head phase change); this script measures
where that step falls, in optimiser steps, for the toy model at the toy batch (32 rows = 4,096
tokens, notebook 04's largest), against the toy run's 347 steps (1.2M tokens; its batch warms
up from fewer rows).
A plain loop, not the kit's trainer (no MTP loss, no batch warm-up, every row the same length):
torch's AdamW at 2e-3, decay 0.1 on every parameter, a 20-step warm-up and cosine decay to 10%.
Results: `benchmarks/RESULTS.md`, "Copying from context at toy size".
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

from mimo_lite.data.mixture import heldout_sequences, stage_sampler
from mimo_lite.eval.long_context import copy_probe
from mimo_lite.model import MiMoForCausalLM
from mimo_lite.profile import as_profile
from mimo_lite.tokenizer import ensure_tokenizer
from mimo_lite.train.pretrain import model_config


def tiled_rows(n: int, tokens: torch.Tensor, length: int, g: torch.Generator) -> torch.Tensor:
    """n rows, each a random span of 8-32 ids from `tokens` repeated to `length` ids."""
    rows = []
    for _ in range(n):
        period = int(torch.randint(8, 33, (1,), generator=g))
        span = tokens[torch.randint(len(tokens), (period,), generator=g)]
        rows.append(span.repeat(length // period + 1)[:length])
    return torch.stack(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--share", type=float, default=0.25,
                    help="share of each batch that is tiled random spans")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--rows", type=int, default=32, help="rows of stage 1's length per step (toy: 32)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (the gpu profile's dtype)")
    ap.add_argument("--out", help="write the probe's figures here as JSON")
    args = ap.parse_args()

    profile = as_profile(args.profile)
    tokenizer = ensure_tokenizer(profile)
    sampler = stage_sampler(profile, 1)
    distances = [sampler.seq_len // 4, 3 * sampler.seq_len // 4]
    long = profile.data.stage(3).seq_len        # rows of stage 3's length, as notebook 04's probe
    filler = torch.cat([heldout_sequences(profile, d, long) for d in ("general", "code", "math")])
    filler = filler[torch.randperm(len(filler), generator=torch.Generator().manual_seed(0))][:48]
    seen = torch.unique(filler)
    span_tokens = seen[~torch.isin(seen, torch.tensor(tokenizer.all_special_ids))]

    torch.manual_seed(args.seed)
    model = MiMoForCausalLM(model_config(profile, tokenizer)).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(args.seed)
    tiled = round(args.rows * args.share)
    position, record, t0 = 0, [], time.time()
    for step in range(1, args.steps + 1):
        scale = min(1.0, step / 20) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / args.steps)))
        for group in opt.param_groups:
            group["lr"] = args.lr * scale
        parts = []
        if args.rows > tiled:
            parts.append(sampler.batch(position, args.rows - tiled)[0])
            position += args.rows - tiled
        if tiled:
            parts.append(tiled_rows(tiled, span_tokens, sampler.seq_len, g))
        x = torch.cat(parts).to(args.device)
        with torch.autocast(x.device.type, torch.bfloat16, enabled=args.bf16):
            logits = model(x[:, :-1]).logits
        loss = F.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.every == 0 or step == args.steps:
            with torch.autocast(x.device.type, torch.bfloat16, enabled=args.bf16):
                probe = copy_probe(model, filler, span_tokens, distances, span_len=8, start=16)
            row = {"step": step, "tokens": step * args.rows * sampler.seq_len, "loss": round(loss.item(), 3)}
            for d in distances:
                row[f"top1_d{d}"] = round(probe[d]["repeat_top1"], 3)
                row[f"gain_d{d}"] = round(probe[d]["first_loss"] - probe[d]["repeat_loss"], 3)
            record.append(row)
            print(json.dumps(row), f"({time.time() - t0:.0f} s)", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "probe": record}, f, indent=1)


if __name__ == "__main__":
    main()
