"""When does the toy model learn to copy from its context? The precondition of any needle probe.

    python benchmarks/probe_copy_phase.py --share 1.0 --steps 1500 --every 100        # ~40 s on one GPU
    python benchmarks/probe_copy_phase.py --share 0.25 --steps 2400 --every 300
    python benchmarks/probe_copy_phase.py --share 0 --steps 4000 --rows 8 --every 500
    python benchmarks/probe_copy_phase.py --profile gpu --bf16 --share 0 --steps 900 --every 150   # gpu size
    python benchmarks/probe_copy_phase.py --share 1.0 --steps 2000 --every 250 --extend 500 --seed 0  # ~1 min

Trains the profile's architecture (`toy` unless `--profile`) from scratch at stage 1's context
(128 tokens at toy), on stage 1's packed rows of the profile's corpus (built if missing), with a
share `--share` of each batch replaced by rows that are nothing but a random span of 8 to
`--max-period` (32) tokens repeated to the end: rows that can only be predicted by copying. Every `--every` steps it runs
notebook 04's copy probe (`mimo_lite.eval.long_context.copy_probe`: a random 8-token span in
held-out text, repeated d = 1/4 and 3/4 of the context later: 32 and 96 tokens at toy) and
prints top-1 on the repeat and the loss gain over the first occurrence. Copying from context is
learnt in a sudden step after a plateau (the induction-head phase change); this script measures
where that step falls, in optimiser steps, for the toy model at the toy batch (32 rows = 4,096
tokens, notebook 04's largest), against the toy run's 347 steps (1.2M tokens; its batch warms
up from fewer rows).
With `--extend N` it then asks the question notebook 04 cannot answer at `toy`, on a model that
copies: does the context extension carry copying past the old context? From the copy phase's end
it builds notebook 04's long-context models, (a) as it is (RoPE base 10k, never trained past stage
1's 128 tokens), (b) the same weights at stage 3's base (640k), (c) N steps at stage 3's length
(512) and base, (d) the control, N steps at 128 tokens and base 10k, and (e) N steps at 512
tokens with base 10k (the longer rows without the base change), each from (a) with the same
tokens per step and tiled spans up to `--max-period` scaled with the row (128 tokens at 512),
and runs notebook 04's probe at its distances
(32, 96, 200 and 400 tokens at toy; every `--extend-every` steps during training).
A plain loop, not the kit's trainer (no MTP loss, no batch warm-up, every row the same length):
torch's AdamW at 2e-3, decay 0.1 on every parameter, a 20-step warm-up and cosine decay to 10%.
Results: `benchmarks/RESULTS.md`, "Copying from context at toy size".
"""
import argparse
import copy
import json
import math
import time

import torch
import torch.nn.functional as F

from mimo_lite.data.mixture import heldout_sequences, stage_sampler
from mimo_lite.eval.long_context import copy_probe, probe_distances
from mimo_lite.model import MiMoForCausalLM
from mimo_lite.profile import as_profile
from mimo_lite.tokenizer import ensure_tokenizer
from mimo_lite.train.loop import set_rope_theta
from mimo_lite.train.pretrain import model_config


def tiled_rows(n: int, tokens: torch.Tensor, length: int, g: torch.Generator,
               max_period: int = 32) -> torch.Tensor:
    """n rows, each a random span of 8-`max_period` ids from `tokens` repeated to `length` ids."""
    rows = []
    for _ in range(n):
        period = int(torch.randint(8, max_period + 1, (1,), generator=g))
        span = tokens[torch.randint(len(tokens), (period,), generator=g)]
        rows.append(span.repeat(length // period + 1)[:length])
    return torch.stack(rows)


def train_phase(model, steps: int, rows: int, share: float, sampler, tokens: torch.Tensor,
                max_period: int, lr: float, g: torch.Generator, args, probe=None) -> list[dict]:
    """`steps` optimiser steps of `rows` rows of the sampler's length, a share `share` of them tiled
    random spans (periods 8-`max_period`), the rest the sampler's corpus rows; AdamW from fresh,
    a 20-step warm-up and cosine decay to 10% of `lr`. `probe(step, loss)` every `args.every` steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    tiled = round(rows * share)
    position, record = 0, []
    model.train()
    for step in range(1, steps + 1):
        scale = min(1.0, step / 20) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        parts = []
        if rows > tiled:
            parts.append(sampler.batch(position, rows - tiled)[0])
            position += rows - tiled
        if tiled:
            parts.append(tiled_rows(tiled, tokens, sampler.seq_len, g, max_period))
        x = torch.cat(parts).to(args.device)
        with torch.autocast(x.device.type, torch.bfloat16, enabled=args.bf16):
            logits = model(x[:, :-1]).logits
        loss = F.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if probe is not None and (step % args.every == 0 or step == steps):
            record.append(probe(step, loss.item()))
    return record


def extension_study(model, profile, args, filler, span_tokens, g) -> dict:
    """Notebook 04's four long-context models and one more, rebuilt from a model that copies (the
    copy phase's end), and notebook 04's probe at its distances: (a) as it is, base 10k, never
    trained past stage 1's length; (b) the same weights at stage 3's RoPE base; (c) `--extend`
    steps at stage 3's length and base, spans scaled with the row (up to `max_period` × 512/128 at
    toy); (d) the control: the same steps at stage 1's length and base 10k; (e) stage 3's length at
    base 10k (the longer rows without the base change). Each trained model starts from (a) with a
    fresh optimiser at `--extend-lr`, with as many tokens per step as the copy phase."""
    short, long = profile.data.stage(1).seq_len, profile.data.stage(3).seq_len
    theta = profile.pretrain.stage3_rope_theta
    start, span_len = 16, 8
    distances = probe_distances(short, long, start, span_len)
    samplers = {short: stage_sampler(profile, 2), long: stage_sampler(profile, 3)}
    end = copy.deepcopy(model.state_dict())
    variants = {"(a) copy phase's end, base 10k": (None, 10_000.0),
                f"(b) same weights, base {theta / 1000:,.0f}k": (None, theta),
                "(c) extended: stage 3's length and base": (long, theta),
                "(d) control: stage 1's length, base 10k": (short, 10_000.0),
                "(e) stage 3's length, base 10k": (long, 10_000.0)}
    study = {"distances": distances, "short_context": short, "long_context": long, "steps": args.extend,
             "models": {}}

    def probe():
        with torch.autocast(args.device, torch.bfloat16, enabled=args.bf16):
            return copy_probe(model, filler, span_tokens, distances, span_len=span_len, start=start)

    def top1(step, loss):                      # during training: top-1 on the repeat per distance
        result = probe()
        return {"step": step, "loss": round(loss, 3), **{d: round(result[d]["repeat_top1"], 3) for d in distances}}

    during = argparse.Namespace(**{**vars(args), "every": args.extend_every})
    for name, (length, base) in variants.items():
        model.load_state_dict(end)
        set_rope_theta(model, base)
        if length is not None:
            t0 = time.time()
            rows = max(1, args.rows * short // length)
            study.setdefault("during", {})[name] = train_phase(
                model, args.extend, rows, args.share, samplers[length], span_tokens,
                args.max_period * length // short, args.extend_lr, g, during, top1)
            print(f"{name}: {args.extend} steps of {rows} x {length} tokens in {time.time() - t0:.0f} s", flush=True)
        result = probe()
        study["models"][name] = {d: {k: round(v, 3) for k, v in result[d].items()} for d in distances}
        print(name, json.dumps({f"top1_d{d}": study["models"][name][d]["repeat_top1"] for d in distances}), flush=True)
    return study


def summarise(paths: list[str], copies: float = 0.5) -> None:
    """The `--extend` study over seeds: per model and distance, mean top-1 on the repeat with a 95%
    bootstrap interval over the seeds whose copy phase ended copying (top-1 above `copies` at the
    shortest distance), and the extension's effect paired by seed: (c) − (d) and (c) − (a)."""
    import numpy as np

    from mimo_lite.eval.intervals import bootstrap, fmt

    runs = [json.load(open(path)) for path in paths]
    kept = [r for r in runs if r["probe"][-1][f"top1_d{r['extension']['short_context'] // 4}"] > copies]
    print(f"{len(kept)} of {len(runs)} seeds ended the copy phase copying (top-1 > {copies} at the shortest "
          f"distance): seeds {[r['args']['seed'] for r in kept]}")
    if not kept:
        return
    distances = kept[0]["extension"]["distances"]
    names = list(kept[0]["extension"]["models"])
    top1 = {n: {d: [r["extension"]["models"][n][str(d)]["repeat_top1"] for r in kept] for d in distances}
            for n in names}
    mean = lambda xs: float(np.mean(xs))                                   # noqa: E731
    print(f"{'model':<42}" + "".join(f"{'d = ' + str(d):>24}" for d in distances))
    for n in names:
        print(f"{n:<42}" + "".join(f"{fmt(bootstrap(top1[n][d], mean)):>24}" for d in distances))
    c, d_, a = names[2], names[3], names[0]
    for label, other in (("(c) − (d)", d_), ("(c) − (a)", a)):
        gaps = {d: [x - y for x, y in zip(top1[c][d], top1[other][d])] for d in distances}
        print(f"{label:<42}" + "".join(f"{fmt(bootstrap(gaps[d], mean), signed=True):>24}" for d in distances))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--summarise", nargs="+", metavar="JSON",
                    help="print the --extend study over the runs written with --out, and stop")
    ap.add_argument("--profile", default="toy")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a profile setting, as mimo-lite --set: model.overrides={hidden_size: 64, num_hidden_layers: 2}")
    ap.add_argument("--share", type=float, default=0.25,
                    help="share of each batch that is tiled random spans")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--rows", type=int, default=32, help="rows of stage 1's length per step (toy: 32)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-period", type=int, default=32,
                    help="longest tiled span, in tokens at stage 1's length (scaled with longer rows)")
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extend", type=int, default=0,
                    help="then this many steps of each long-context variant (notebook 04's (a)-(d), and (e))")
    ap.add_argument("--extend-lr", type=float, default=5e-4)
    ap.add_argument("--extend-every", type=int, default=50, help="probe the trained variants this often")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (the gpu profile's dtype)")
    ap.add_argument("--out", help="write the probe's figures here as JSON")
    args = ap.parse_args()
    if args.summarise:
        return summarise(args.summarise)

    profile = as_profile(args.profile, dict(kv.split("=", 1) for kv in args.set))
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
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()

    def probe(step, loss):
        with torch.autocast(args.device, torch.bfloat16, enabled=args.bf16):
            result = copy_probe(model, filler, span_tokens, distances, span_len=8, start=16)
        row = {"step": step, "tokens": step * args.rows * sampler.seq_len, "loss": round(loss, 3)}
        for d in distances:
            row[f"top1_d{d}"] = round(result[d]["repeat_top1"], 3)
            row[f"gain_d{d}"] = round(result[d]["first_loss"] - result[d]["repeat_loss"], 3)
        print(json.dumps(row), f"({time.time() - t0:.0f} s)", flush=True)
        return row

    record = train_phase(model, args.steps, args.rows, args.share, sampler, span_tokens,
                         args.max_period, args.lr, g, args, probe)
    out = {"args": vars(args), "probe": record}
    if args.extend:
        out["extension"] = extension_study(model, profile, args, filler, span_tokens, g)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
