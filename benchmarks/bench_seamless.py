"""Table 2 measured: the five rollout modes on the SFT model, virtual clock and wall clock, next
to the paper's numbers; then Table 3 (validation, barrier vs async reward).

The workload is notebook 09's (`rl.runs.seamless_workload`): the profile's SFT model (built if
missing), a code-heavy mix of training problems, `seamless.steps` batches per mode from the same
seeds, one engine of `seamless.rollout_batch` rows, `seamless.reward_workers` reward processes.
The virtual clock counts engine steps and prices scoring with `VirtualCost` (the same on any
machine); the wall clock times the rollout phase on this one.

    PYTHONPATH=. python benchmarks/bench_seamless.py [--profile toy] [--runs-root DIR] [--set KEY=VALUE ...]

`--set device=cuda` puts the generator on the GPU (rewards stay on CPU processes); `--set
seamless.rollout_batch=256` and the like resize the workload without another SFT model.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoTokenizer

from mimo_lite.cli import parse_settings
from mimo_lite.model import MiMoForCausalLM
from mimo_lite.profile import load_profile
from mimo_lite.rl.executor import RewardExecutor
from mimo_lite.rl.rollout import EngineRollout
from mimo_lite.rl.runs import seamless_workload
from mimo_lite.rl.seamless import ROLLOUT_MODES, VirtualCost, measure, table, validate
from mimo_lite.rl.seamless_sim import PAPER_TABLE2, PAPER_TABLE3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--runs-root", default=None, help="where runs/<profile>/ lives (default: the kit's runs/)")
    parser.add_argument("--model", default=None,
                        help="a checkpoint folder to generate with instead of the profile's SFT model")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one profile setting (repeatable), e.g. --set device=cuda")
    args = parser.parse_args()
    profile = load_profile(args.profile, parse_settings(args.set))
    profile.use_threads()
    s, cost = profile.seamless, VirtualCost()
    w = seamless_workload(profile, args.runs_root, progress=False, model_dir=args.model)
    cfg = w.cfg
    model = MiMoForCausalLM.from_pretrained(w.model_dir).to(profile.torch_device).eval()
    tokenizer = AutoTokenizer.from_pretrained(w.model_dir)
    backend = EngineRollout(model, tokenizer, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.rollout_batch)
    code = sum(p["domain"] == "code" for p in w.problems)
    print(f"profile {profile.name}: {s.steps} step(s) per mode, B = {cfg.batch_prompts} valid groups × G = "
          f"{cfg.group_size}, one engine of {cfg.rollout_batch} rows, ≤ {cfg.max_new_tokens} new tokens, "
          f"{cfg.reward_workers} reward worker(s), {len(w.problems)} problems ({code} code), seed {profile.seed}, "
          f"torch threads {torch.get_num_threads()}, generator on {profile.torch_device}")
    start = time.perf_counter()
    with RewardExecutor(cfg.reward_workers, cfg.code_scheme) as executor:
        measured = {m: measure(backend, executor, w.problems, tokenizer, cfg, m, steps=s.steps, seed=profile.seed,
                               cost=cost) for m in ROLLOUT_MODES}
        validated = {v: validate(backend, executor, w.heldout, tokenizer, s.validation_samples, v,
                                 seed=profile.seed, cost=cost) for v in ("barrier", "async")}
    rows = table({m: r for m, (r, _) in measured.items()}, {m: i for m, (_, i) in measured.items()})

    print("\n| method | overall | rollout | norm. idle | idle ratio | sample waste | token waste | wall: rollout s/step | "
          "wall: rollout | wall: idle ratio | paper: overall, rollout, norm. idle, idle ratio, waste |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = PAPER_TABLE2[r["mode"]]
        waste = "/" if p["waste"] is None else f"{p['waste']:.1%}"
        print(f"| {r['mode']} | {r['overall_speedup']:.2f}× | {r['rollout_speedup']:.2f}× | {r['norm_idle']:.2f} | "
              f"{r['idle_ratio']:.1%} | {r['sample_waste']:.1%} | {r['token_waste']:.1%} | {r['wall_rollout_s']:.2f} | "
              f"{r['wall_rollout_speedup']:.2f}× | {r['wall_idle_ratio']:.1%} | "
              f"{p['overall']:.2f}×, {p['rollout']:.2f}×, {p['norm_idle']:.2f}, {p['idle_ratio']:.1%}, {waste} |")

    naive = validated["barrier"]
    print(f"\nTable 3 (validation: {len(w.heldout)} held-out problems × {s.validation_samples} answers)\n")
    print("| method | speed-up | norm. idle | idle ratio | wall: speed-up | wall: idle ratio | paper |")
    print("|---|---|---|---|---|---|---|")
    for name, v in (("naive", naive), ("seamless", validated["async"])):
        p = PAPER_TABLE3[name]
        print(f"| {name} | {naive['virtual_steps'] / v['virtual_steps']:.2f}× | "
              f"{v['record'].idle_slot_s / max(naive['record'].idle_slot_s, 1e-9):.2f} | {v['idle_ratio']:.1%} | "
              f"{naive['wall']['rollout_s'] / v['wall']['rollout_s']:.2f}× | {v['wall']['idle_ratio']:.1%} | "
              f"{p['overall']:.2f}×, {p['norm_idle']:.2f}, {p['idle_ratio']:.1%} |")
    print(f"\n({time.perf_counter() - start:.0f} s measured)")


if __name__ == "__main__":
    main()
