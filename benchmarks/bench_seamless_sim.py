"""The rollout-scheduler simulator at the paper's settings, next to the paper's Table 2 and Table 3.

Settings: 256 generator workers, batch 512 groups of G = 16, mean pass rate 0.41, lognormal
response lengths (median 6K tokens, σ 0.9) cut at 32,768, code rewards 4 s on 128 reward
workers (`SimConfig()`'s defaults; what the report does not state, the unit of its batch of 512
included, is a guess written there). Then the contrasts (abort and take whatever finished; one
step stale), Table 2 again with the decode step fitted to the kit's own engine on one H200
(`fit_decode_step()`, at `gpu` size and with the full 7.8B model), and, unless --quick, the assumptions that move the result (slot headroom,
the launch margin, code reward latency, naive round size) and two sweeps: the width of the
response-length tail and the code reward latency.

    python benchmarks/bench_seamless_sim.py [--steps 5] [--seed 0] [--quick]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from mimo_lite.rl.seamless_sim import (KIT_H200_DECODE, KIT_H200_DECODE_7B, PAPER_TABLE2, PAPER_TABLE3, SimConfig,
                                       fit_decode_step, row, simulate, sweep, table, validation)


def fmt(x, spec):
    return "/" if x is None else format(x, spec)


def print_table2(rows: list[dict], title: str) -> None:
    print(f"\n{title}\n")
    print("| method | overall | rollout | norm. idle | idle ratio (slots / workers) | sample waste "
          "(zero-adv + excess + aborted) | token waste | mean selected length | "
          "paper: overall, rollout, norm. idle, idle ratio, waste |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = PAPER_TABLE2.get(r["mode"])
        paper = "—" if p is None else (f"{p['overall']:.2f}×, {p['rollout']:.2f}×, {p['norm_idle']:.2f}, "
                                       f"{p['idle_ratio']:.1%}, {fmt(p['waste'], '.1%')}")
        print(f"| {r['mode']} | {r['overall_speedup']:.2f}× | {r['rollout_speedup']:.2f}× | {r['norm_idle']:.2f} | "
              f"{r['idle_ratio']:.1%} / {r['worker_idle_ratio']:.1%} | {r['sample_waste']:.1%} "
              f"({r['waste_zero_advantage']:.1%} + {r['waste_excess']:.1%} + {r['waste_aborted']:.1%}) | "
              f"{r['token_waste']:.1%} | {r['mean_selected_length']:,.0f} | {paper} |")


def print_sweep(rows: list[dict], key: str, label: str, value_spec: str) -> None:
    """One line per swept value: early termination against naive at the same point."""
    print(f"| {label} | selected answers cut at the cap | idle ratio, naive → early termination (slots) | "
          "early termination over naive: overall, rollout |")
    print("|---|---|---|---|")
    by_value = {}
    for r in rows:
        by_value.setdefault(r[key], {})[r["mode"]] = r
    for value, m in by_value.items():
        n, e = m["naive"], m["early_termination"]
        print(f"| {value:{value_spec}} | {n['truncated_share']:.1%} | {n['idle_ratio']:.1%} → {e['idle_ratio']:.1%} | "
              f"{e['overall_speedup']:.2f}×, {e['rollout_speedup']:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="steps per scheduler (the paper: a 5-step trace)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="skip the assumptions section")
    args = parser.parse_args()
    start = time.perf_counter()
    cfg = SimConfig()

    rows = table(cfg, steps=args.steps, seed=args.seed)
    naive = simulate(cfg, "naive", args.steps, args.seed)
    rows += [row(simulate(cfg, m, args.steps, args.seed), naive) for m in ("take_finished", "one_step_stale")]
    print_table2(rows, f"Table 2 at the paper's settings ({args.steps} steps, seed {args.seed}), normalised to naive")

    print("\nTable 3 (validation: 512 prompts × 16, async reward only)\n")
    print("| method | speed-up | norm. idle | idle ratio (slots / workers) | paper |")
    print("|---|---|---|---|---|")
    for r in validation(cfg, seed=args.seed):
        p = PAPER_TABLE3[r["mode"]]
        print(f"| {r['mode']} | {r['overall_speedup']:.2f}× | {r['norm_idle']:.2f} | {r['idle_ratio']:.1%} / "
              f"{r['worker_idle_ratio']:.1%} | {p['overall']:.2f}×, {p['norm_idle']:.2f}, {p['idle_ratio']:.1%} |")

    # The decode step fitted to the kit's engine; the training price scales by the same factor as a
    # full worker's decode step (so training keeps its share of a rollout), rewards unchanged.
    for model, pairs in (("`gpu` size, 95.6M parameters", KIT_H200_DECODE), ("the full 7.8B model", KIT_H200_DECODE_7B)):
        a, c = fit_decode_step(pairs)
        fitted = replace(cfg, step_s=a, step_s_per_slot=c,
                         train_s_per_token=cfg.train_s_per_token * (a + c * cfg.slots) / cfg.t_step(cfg.slots))
        points = ", ".join(f"{rows_} rows {s_ * 1e3:.3f} ms" for rows_, s_ in pairs)
        print_table2(table(fitted, steps=args.steps, seed=args.seed),
                     f"Table 2 with the decode step fitted to the kit's engine on one H200, {model} ({points}: "
                     f"t_step(b) = {a * 1e3:.3f} ms + {c * 1e6:.2f} µs · b, against the guess "
                     f"{cfg.step_s * 1e3:.0f} ms + {cfg.step_s_per_slot * 1e6:.0f} µs · b), training "
                     f"{fitted.train_s_per_token * 1e9:.1f} ns a token, rewards as above")

    if not args.quick:
        print("\nWhat moves the speed-up of early termination over naive (2 steps each)\n")
        print("| assumption | continuous | + async | + early termination | take finished |")
        print("|---|---|---|---|---|")
        variants = [("defaults", cfg),
                    ("slots 32: one round fills the cluster, no headroom", replace(cfg, slots=32)),
                    ("launch margin 0", replace(cfg, launch_margin=0.0)),
                    ("launch margin 0.3", replace(cfg, launch_margin=0.3)),
                    ("code reward 1 s", replace(cfg, code_reward_s=1.0)),
                    ("code reward 16 s", replace(cfg, code_reward_s=16.0)),
                    ("naive rounds of 2 × B prompts", replace(cfg, round_groups=2 * cfg.batch_groups)),
                    ("wrong answers 1.5× longer", replace(cfg, wrong_length_factor=1.5))]
        for name, c in variants:
            r = {x["mode"]: x["overall_speedup"] for x in table(
                c, ("naive", "continuous", "async_reward", "early_termination", "take_finished"), 2, args.seed)}
            print(f"| {name} | {r['continuous']:.2f}× | {r['async_reward']:.2f}× | "
                  f"{r['early_termination']:.2f}× | {r['take_finished']:.2f}× |")

        one_cluster = dict(workers=(cfg.workers,), steps=2, seed=args.seed)
        print("\nSweep: the width of the response-length tail (lognormal σ, median 6K tokens; 2 steps each)\n")
        print_sweep(sweep(cfg, length_sigmas=(0.3, 0.6, 0.9, 1.2, 1.5), code_reward_s=(cfg.code_reward_s,),
                          **one_cluster), "length_sigma", "σ", ".1f")
        print("\nSweep: code reward latency (median seconds a code answer's tests take; math 0.05 s; 2 steps each)\n")
        print_sweep(sweep(cfg, length_sigmas=(cfg.length_sigma,), code_reward_s=(0.25, 1.0, 4.0, 16.0, 64.0),
                          **one_cluster), "code_reward_s", "code reward s", "g")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
