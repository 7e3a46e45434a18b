"""The RL models of a profile: MiMo-RL from the SFT model and MiMo-RL-Zero from the base model.

`ensure_rl_model(profile, start="sft")` leaves `runs/<profile>/rl/`, and `start="base"` leaves
`runs/<profile>/rl_zero/`: a transformers checkpoint with its tokenizer, the run's
`metrics.jsonl`, its final easy data pool (`easy_pool.json`) and a `summary.json` (held-out
pass@1 before and after, rewards, wall time). `start="rl"` continues training the finished RL
model with the easy pool it built: the regime of late training, where many prompts are solved.
Like `ensure_base_model` it is cached by a fingerprint of everything the run read; the run itself
works in `runs/<profile>/grpo/<name>/` (checkpoints: a killed run resumes). Ablations pass
`overrides` of the `rl` section, a `name` of their own and, to repeat a run, another `seed`;
`ablation_runs(profile)` lists those of the paper's ablations, and `queue_runs` starts runs on
`artifacts.Jobs` so that several train side by side.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import torch

from ..artifacts import (FORMAT, build_info, building, current, fingerprint, one_builder,
                         run_folder, runs_dir, write_json)
from ..eval.intervals import compare, difference, proportion
from ..profile import as_profile
from ..train import parallel
from ..train.run import read_metrics
from ..tasks.problems import ensure_problems, load_problems, problems_key

STARTS = ("sft", "base", "rl")
MAIN_RUNS = {"rl": dict(start="sft"), "rl_zero": dict(start="base")}   # MiMo-RL and MiMo-RL-Zero
CODE_SCHEMES = ("vanilla", "strict", "soft")
DYNAMIC_ARMS = {"with dynamic sampling": ("dynamic", True), "without": ("no_dynamic", False)}
EASY_ARMS = {"easy pool (α = 0.1)": ("easy_pool", {}),            # MiMo: solved prompts drawn back 10% of the time
             "removed (α = 0)": ("easy_removed", {"easy_alpha": 0.0}),   # solved prompts out for good
             "kept (no filter)": ("easy_kept", {"easy_filter": False})}  # solved prompts stay in the main pool


def start_model(profile, start: str, runs_root=None, variant: str = "full", progress: bool = True) -> Path:
    """The checkpoint folder RL starts from: the SFT model (`variant` full or light), the base, or
    the finished RL model (itself trained from the full SFT model)."""
    if start == "sft":
        from ..train.sft import ensure_sft_model
        return Path(ensure_sft_model(profile, runs_root=runs_root, variant=variant, progress=progress))
    if start == "base":
        from ..train import ensure_base_model
        ensure_base_model(profile, runs_root, progress)
        return runs_dir(profile.name, runs_root) / "base"
    if start == "rl":
        return ensure_rl_model(profile, "sft", runs_root, progress=progress)
    raise ValueError(f"RL starts from 'sft' (MiMo-RL), 'base' (MiMo-RL-Zero) or 'rl' (the RL model, "
                     f"trained further), got {start!r}.")


def rl_problems(problems: list[dict], cfg) -> list[dict]:
    """The problems a run trains (and is evaluated) on: the chosen math and code tiers."""
    tiers = {"math": cfg.math_tiers, "code": cfg.code_tiers}
    return [p for p in problems if p.get("tier") in tiers[p["domain"]]]


def run_settings(profile, start: str, overrides: dict | None = None, steps: int | None = None,
                 seed: int | None = None):
    """A run's `rl` section (RL-Zero's `zero` settings, then `overrides`), steps and seed."""
    cfg = profile.rl
    if start == "base":
        cfg = cfg.with_overrides(**cfg.zero)
    cfg = cfg.with_overrides(**(overrides or {}))
    return cfg, cfg.steps if steps is None else steps, profile.seed if seed is None else seed


def rl_fingerprint(profile, start: str = "sft", variant: str = "full", overrides: dict | None = None,
                   steps: int | None = None, seed: int | None = None) -> str:
    """What decides a GRPO run (the arguments of `ensure_rl_model`): the model it starts from,
    its `rl` settings, steps, seed, dtype, the problems and FORMAT["rl"]."""
    from ..train.pretrain import base_fingerprint
    from ..train.sft import sft_fingerprint

    profile = as_profile(profile)
    if start == "sft":
        origin = sft_fingerprint(profile, variant)
    elif start == "base":
        origin = base_fingerprint(profile)
    else:                                   # "rl": the RL model, trained from the full SFT model
        origin = rl_fingerprint(profile, "sft")
    cfg, steps, seed = run_settings(profile, start, overrides, steps, seed)
    return fingerprint("grpo", FORMAT["rl"], origin, cfg, steps, seed, profile.dtype, problems_key(profile))


def run_name(start: str, name: str | None = None) -> str:
    """The folder under runs/<profile>/ of a GRPO run: `name`, or rl/ from SFT, rl_zero/ from base."""
    return name or {"sft": "rl", "base": "rl_zero"}.get(start, start)


@one_builder(lambda call: f"grpo_{run_name(call['start'], call['name'])}")
def ensure_rl_model(profile, start: str = "sft", runs_root=None, variant: str = "full",
                    name: str | None = None, overrides: dict | None = None,
                    steps: int | None = None, seed: int | None = None, progress: bool = True) -> Path:
    """Train (or reuse) a GRPO run from `start`; returns its folder under runs/<profile>/.

    `seed` (default: the profile's) seeds the prompt draws, the rollouts and the update order.
    """
    from transformers import AutoTokenizer

    from .trainer import train_grpo

    profile = as_profile(profile)
    cfg, steps, seed = run_settings(profile, start, overrides, steps, seed)
    if start == "rl" and name in (None, "rl"):
        raise ValueError("A run that continues the RL model needs a name of its own "
                         "(name='rl' is the RL model it starts from).")
    name = run_name(start, name)
    origin = start_model(profile, start, runs_root, variant, progress)
    problems_dir = ensure_problems(profile, runs_root)
    digest = rl_fingerprint(profile, start, variant, overrides, steps, seed)
    root = runs_dir(profile.name, runs_root)
    folder, work = root / name, root / "grpo" / name
    if current(folder, digest):
        return folder
    print(f"[mimo-lite] GRPO {name!r} from {origin} ({steps} steps) -> {folder}", flush=True)
    run_folder(work, digest)
    profile.use_threads()
    torch.manual_seed(seed)
    device = profile.torch_device
    # whole in one process; under torchrun sharded, each rank reading only its shards
    model = parallel.load_pretrained(origin, device, profile.torch_dtype)
    tokenizer = AutoTokenizer.from_pretrained(origin)
    train = rl_problems(load_problems(problems_dir / "train.jsonl"), cfg)
    heldout = rl_problems(load_problems(problems_dir / "heldout.jsonl"), cfg)
    pool = json.loads((origin / "easy_pool.json").read_text()) if start == "rl" else []
    # runs from the same model with the same evaluation settings and seed (an ablation's arms)
    # share its start-of-training held-out evaluation: computed by the first, read by the others
    start_eval = root / "grpo" / "start_evaluations" / (fingerprint(
        "start-eval", build_info(origin)["fingerprint"], [p["id"] for p in heldout], cfg.eval_samples,
        cfg.eval_temperature, cfg.eval_max_new_tokens, seed, profile.device, profile.dtype) + ".json")
    t0 = time.perf_counter()
    train_grpo(model, tokenizer, train, cfg, work, heldout=heldout, steps=steps, start_eval=start_eval,
               seed=seed, progress=progress, dtype=profile.torch_dtype,
               compile=profile.compile, tracker=profile.tracker, easy_pool=pool,
               activation_checkpointing=profile.activation_checkpointing,
               async_checkpoints=profile.async_checkpoints)
    model = parallel.whole_model(model)            # under torchrun gathered on rank 0, which saves it
    if parallel.rank() == 0:
        metrics = read_metrics(work / "metrics.jsonl")
        # BUILD.json keeps the call, from which `share.status` recomputes the fingerprint
        call = dict(start=start, variant=variant, overrides=overrides or {}, steps=steps, seed=seed)
        with building(folder, digest, start=start, origin=str(origin), steps=steps, call=call) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            shutil.copy(work / "metrics.jsonl", tmp / "metrics.jsonl")
            shutil.copy(work / "easy_pool.json", tmp / "easy_pool.json")
            write_json(tmp / "summary.json", summarise(metrics, time.perf_counter() - t0))
    parallel.barrier()
    return folder


def summarise(metrics: list[dict], seconds: float) -> dict:
    """Before/after held-out pass@1, first/last rewards (mean of the first and last 5 steps)."""
    evals = [m for m in metrics if "heldout" in m]
    steps = [m for m in metrics if "reward" in m]
    mean = lambda xs: sum(xs) / len(xs) if xs else None      # noqa: E731
    return dict(heldout_before=evals[0]["heldout"] if evals else None,
                heldout_after=evals[-1]["heldout"] if evals else None,
                reward_first=mean([m["reward"] for m in steps[:5]]),
                reward_last=mean([m["reward"] for m in steps[-5:]]),
                steps=len(steps), rollouts=sum(m["rollouts"] for m in steps),
                train_seconds=sum(m["step_s"] for m in steps), seconds=round(seconds, 1))


def seamless_workload(profile, runs_root=None, progress: bool = True, model_dir=None) -> SimpleNamespace:
    """Notebook 09's measured workload, also timed by `benchmarks/bench_seamless.py`: the SFT model
    (built if missing), a mix of `seamless.workload_size` training problems of which a
    `code_share` are code of `seamless.code_tiers` and the rest math of `rl.math_tiers` (problems
    repeat when there are too few), the rl section resized by the `seamless` section, and a mix of
    at most `validation_problems` held-out problems of the same kinds for Table 3.

    `model_dir`: generate with this checkpoint instead (a model trained elsewhere).

    Returns a namespace: model_dir, problems (the mix), heldout, cfg (an RLSection)."""
    profile = as_profile(profile)
    s = profile.seamless
    model_dir = Path(model_dir) if model_dir else start_model(profile, "sft", runs_root, progress=progress)
    problems_dir = ensure_problems(profile, runs_root)
    cfg = profile.rl.with_overrides(batch_prompts=s.batch_prompts, group_size=s.group_size,
                                    rollout_batch=s.rollout_batch, max_new_tokens=s.max_new_tokens,
                                    reward_workers=s.reward_workers, dynamic_sampling=True,
                                    code_tiers=s.code_tiers if s.code_share > 0 else [])

    def mix(problems: list[dict], size: int) -> list[dict]:
        rng = random.Random(profile.seed)
        code = [p for p in problems if p["domain"] == "code" and p.get("tier") in cfg.code_tiers]
        math = [p for p in problems if p["domain"] == "math" and p.get("tier") in cfg.math_tiers]
        n_code = round(size * s.code_share)
        if (n_code and not code) or (size - n_code and not math):
            raise ValueError(f"The seamless workload needs code problems of tiers {cfg.code_tiers} and math "
                             f"problems of tiers {cfg.math_tiers}: check problems.code_variants and "
                             "seamless.code_tiers, or set seamless.code_share.")
        rng.shuffle(code)
        rng.shuffle(math)
        return [code[k % len(code)] for k in range(n_code)] + [math[k % len(math)] for k in range(size - n_code)]

    train = mix(load_problems(problems_dir / "train.jsonl"), s.workload_size)
    heldout = rl_problems(load_problems(problems_dir / "heldout.jsonl"), cfg)
    heldout = mix(heldout, min(s.validation_problems, len(heldout)))
    return SimpleNamespace(model_dir=model_dir, problems=train, heldout=heldout, cfg=cfg)


def ablation_runs(profile) -> dict:
    """The GRPO runs of the paper's ablations (notebook 08b), by ablation, each as {label: keyword
    arguments of `ensure_rl_model`}:

    - "code_reward": the vanilla, strict and soft code rewards, `code_ablation_seeds` runs each of
      `code_ablation_steps` steps from the SFT model, on the code tiers `code_ablation_tiers` only,
      with half the groups and at most two rollout rounds;
    - "dynamic_sampling": with and without, `ablation_seeds` runs each from the SFT model, sized by
      `rl.ablation`;
    - "light_sft": RL from the light SFT model with exactly the main RL run's settings;
    - "easy_pool": the three arms of `EASY_ARMS`, each continuing the finished RL model with the
      easy pool it built (`start="rl"`), sized by `rl.ablation`. They read the RL model: queue
      them only once it is built.

    Notebook 08 queues them beside its two main runs, so that both cores stay busy; notebook 08b
    asks for the same runs and finds them built (same arguments, same fingerprints), or builds
    them when 08 has not run.
    """
    profile = as_profile(profile)
    cfg = profile.rl
    code_only = dict(math_tiers=[], code_tiers=list(cfg.code_ablation_tiers),
                     batch_prompts=max(1, cfg.batch_prompts // 2), max_rounds=min(cfg.max_rounds, 2), eval_every=cfg.code_ablation_steps)
    steps = cfg.with_overrides(**cfg.ablation).steps
    seeds = [profile.seed + k for k in range(cfg.ablation_seeds)]
    return {
        "code_reward": {(scheme, s): dict(start="sft", name=f"ablations/code_{scheme}_seed{s}",
                                          overrides={**code_only, "code_scheme": scheme},
                                          steps=cfg.code_ablation_steps, seed=profile.seed + s)
                        for scheme in CODE_SCHEMES for s in range(cfg.code_ablation_seeds)},
        "dynamic_sampling": {(label, s): dict(start="sft", name=f"ablations/{name}_seed{s}",
                                              overrides={**cfg.ablation, "dynamic_sampling": on},
                                              steps=steps, seed=s)
                             for label, (name, on) in DYNAMIC_ARMS.items() for s in seeds},
        "light_sft": {"light SFT → RL": dict(start="sft", variant="light", name="ablations/light_sft")},
        "easy_pool": {label: dict(start="rl", name=f"ablations/{name}", overrides={**cfg.ablation, **o},
                                  steps=steps)
                      for label, (name, o) in EASY_ARMS.items()},
    }


def queue_runs(jobs, profile, calls: dict, runs_root=None) -> dict:
    """Queue GRPO runs, {label: keyword arguments of `ensure_rl_model`}, on `jobs` (an
    `artifacts.Jobs`); returns {label: handle}, whose `result()` waits for the run's folder. With
    `processes` 2 (toy) the runs train two at a time, quietly, while the notebook goes on; with 1
    each trains here, with its progress bar, when its result is first asked for. A run already
    built is only looked up, here: it takes no worker."""
    profile = as_profile(profile)
    quiet = profile.processes > 1
    return {label: jobs.submit(partial(ensure_rl_model, profile, runs_root=runs_root, progress=not quiet, **kw),
                               here=rl_run_built(profile, runs_root, **kw))
            for label, kw in calls.items()}


def rl_run_built(profile, runs_root=None, start: str = "sft", variant: str = "full", name: str | None = None,
                 overrides: dict | None = None, steps: int | None = None, seed: int | None = None) -> bool:
    """Whether `ensure_rl_model` with these arguments would find its run built (and train nothing)."""
    profile = as_profile(profile)
    folder = runs_dir(profile.name, runs_root) / run_name(start, name)
    return current(folder, rl_fingerprint(profile, start, variant, overrides, steps, seed))


def finished(handles: dict) -> dict:
    """{label: handle} → {label: run folder}, waiting for each run."""
    return {label: h.result() for label, h in handles.items()}


def rl_metrics(folder: Path) -> list[dict]:
    return read_metrics(Path(folder) / "metrics.jsonl")


def rl_summary(folder: Path) -> dict:
    return json.loads((Path(folder) / "summary.json").read_text())


def heldout_gain(summary: dict) -> dict:
    """A run's held-out pass@1 after − before (its `summary.json`), with Newcombe's 95% interval
    over the sampled answers and the verdict against no change ('higher', 'lower', 'within noise').

    >>> s = dict(heldout_before=dict(pass_at_1=0.2, answers=400), heldout_after=dict(pass_at_1=0.3, answers=400))
    >>> g = heldout_gain(s)
    >>> round(g["estimate"], 3), g["verdict"]
    (0.1, 'higher')
    """
    rate = lambda h: proportion(h["pass_at_1"] * h["answers"], h["answers"])       # noqa: E731
    gain = difference(rate(summary["heldout_after"]), rate(summary["heldout_before"]))
    return dict(gain, verdict=compare(gain, dict(low=0.0, high=0.0)))
