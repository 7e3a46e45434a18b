"""The GRPO trainer: rollouts, rewards, dynamic sampling, mini-batch updates, checkpoints.

One step (report §3.3, facts file §4.3–4.6):
  1. draw prompts (the easy data pool with probability α), G answers each from the rollout
     backend at temperature τ; each answer goes to the reward executor as soon as it finishes;
  2. dynamic sampling: drop the groups whose answers all pass or all fail and draw again until
     `batch_prompts` groups with signal are found (or `max_rounds` rounds are spent);
  3. group-normalised advantages (Eq. 2), then `updates_per_step` mini-batch updates of Eq. 1
     against the rollout policy's log-probabilities. The MTP layers stay frozen: MiMo trains
     them in pre-training and SFT, not in RL (README §II, issue #14; facts file §1.3).
     Then `backend.set_policy(step)`: every rollout of the step has finished, so the next step's
     rollouts come from the new weights only (on-policy), each stamped with that version. A
     backend that holds its own copy of the weights (vLLM at scale) receives them instead, through
     the weight-sync protocol (`weight_sync.push_weights`, ending with `resume(step)`).
Every step appends a line to metrics.jsonl; checkpoints are atomic (`train/checkpoint.py`) and a
killed run resumes from the newest good one.

Under torchrun (FSDP2) rank 0 alone draws prompts, generates and scores, with a whole copy of the
policy refreshed from the shards after every step; the step's groups go to every rank, and each
rank computes the loss of its share of every mini-batch. With a vLLM backend (`infer/vllm_backend.py`)
every rank takes part in each sync (each parameter is gathered whole, one at a time) and rank 0
sends the weights to vLLM's GPUs.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..artifacts import share_cores
from ..eval import solve_rate
from ..profile import RLSection
from ..train import parallel
from ..train.run import Run
from .batches import ProblemSampler, zero_advantage
from .executor import RewardExecutor
from .grpo import LossStats, grpo_loss
from .logprobs import token_logprobs
from .rollout import EngineRollout, RolloutBackend
from .seamless import Sample, collect
from .weight_sync import push_weights


def collect_groups(backend: RolloutBackend, executor: RewardExecutor, sampler: ProblemSampler,
                   tokenizer, cfg: RLSection, seed: int, prompt_cache: dict | None = None):
    """Steps 1–2: rollouts until the batch holds `batch_prompts` groups with signal, scheduled
    as `cfg.rollout_mode` says (`seamless.py`: naive rounds, continuous rollout, async reward,
    early termination).

    Returns (kept groups, info): info counts rollouts, groups drawn, zero-advantage groups,
    the groups drawn from the main pool and how many of them carry signal, unscored samples and
    their reasons, rewards of every scored rollout, and the step's Seamless accounts (generator
    idle time, sample waste, a timeline).
    """
    return collect(backend, executor, sampler, tokenizer, cfg, seed, prompt_cache)


def sequence_logprobs(model, samples: list[Sample], temperature: float, chunk: int = 0):
    """log π_θ of each answer token at temperature τ, its entropy, and the answer mask; (B, T) each.

    The log-probs come from the last hidden states through the lm_head (`logprobs.token_logprobs`);
    no (B, T, V) tensor is built when `chunk` > 0: then only the answer positions are scored,
    `chunk` at a time. `chunk` = 0 scores every position in one pass, the notebooks' path (at a toy
    vocabulary the prompt rows cost little; this path keeps their runs' numbers bit for bit).
    """
    lengths = [len(s.prompt) + len(s.tokens) for s in samples]
    ids = torch.zeros(len(samples), max(lengths), dtype=torch.long)     # right padding: causal, no mask
    mask = torch.zeros(len(samples), max(lengths) - 1)
    old = torch.zeros_like(mask)
    for i, s in enumerate(samples):
        ids[i, :lengths[i]] = torch.tensor(s.prompt + s.tokens)
        start = len(s.prompt) - 1                                         # logits at t predict t + 1
        mask[i, start:start + len(s.tokens)] = 1
        old[i, start:start + len(s.tokens)] = torch.tensor(s.logprobs)
    device = model.lm_head.weight.device
    ids, mask = ids.to(device), mask.to(device)
    hidden = model(ids, return_mtp=False, return_logits=False).hidden_states   # (B, T, D)
    targets = F.pad(ids[:, 1:], (0, 1))                                  # (B, T): position t predicts t + 1
    scored = F.pad(mask.bool(), (0, 1)) if chunk else torch.ones_like(ids, dtype=torch.bool)
    head = lambda h: model.lm_head(model.model.norm(h))                # noqa: E731  (n, D) → (n, V)
    lp, ent = token_logprobs(head, hidden[scored], targets[scored], temperature, chunk)   # (N,) each
    logprobs = torch.zeros(ids.shape, dtype=lp.dtype, device=device)
    logprobs[scored] = lp
    entropy = torch.zeros_like(logprobs)
    entropy[scored] = ent
    return logprobs[:, :-1], old.to(device), mask, entropy[:, :-1]


def micro_batches(samples: list[Sample], token_budget: int) -> list[list[Sample]]:
    """Split a mini-batch so that each part's padded size (rows × longest prompt + answer) fits
    `token_budget`; a sequence longer than the budget goes alone. 0: one part, the whole batch.

    Longest first, so that sequences of like length share a part and little is padding.
    """
    if token_budget <= 0:
        return [samples]
    length = lambda s: len(s.prompt) + len(s.tokens)                  # noqa: E731
    parts: list[list[Sample]] = []
    for s in sorted(samples, key=length, reverse=True):
        if parts and (len(parts[-1]) + 1) * length(parts[-1][0]) <= token_budget:
            parts[-1].append(s)                   # the part's first sample is its longest
        else:
            parts.append([s])
    return parts


def update(model, optimizer, groups: list[list[Sample]], cfg: RLSection,
           generator: torch.Generator, reference=None, autocast=None) -> dict:
    """Step 3: mini-batch updates of Eq. 1 over the scored answers of the kept groups.

    Each mini-batch is one optimiser step; its gradient is accumulated over micro-batches of at
    most `cfg.micro_batch_tokens` padded tokens, each micro-batch's loss weighted so that the sum
    is the mini-batch's loss: Eq. 1's 1/Σ_i|o_i| runs over the whole mini-batch, not each part.
    Under torchrun every rank holds every group and takes answers rank, rank + world, ... of each
    mini-batch; Σ_i|o_i| still counts the whole mini-batch, so the ranks' gradients sum to it.
    `reference` (the frozen starting model) is needed only for the KL ablation (cfg.kl_coef > 0);
    `autocast` is the run's precision context (none: the model's own dtype).
    """
    autocast = autocast or contextlib.nullcontext()
    samples = [s for g in groups for s in g if s.advantage is not None]
    if not samples:
        return dict(loss=0.0, clip_low=0.0, clip_high=0.0, ratio=1.0, kl=0.0, entropy=None,
                    grad_norm=None, updates=0)
    order = torch.randperm(len(samples), generator=generator).tolist()
    parts = [order[k::cfg.updates_per_step] for k in range(cfg.updates_per_step)]
    rank, world = parallel.rank(), parallel.world_size()
    stats: list[LossStats] = []
    entropy, tokens, updates, norms = 0.0, 0, 0, []
    for part in (p for p in parts if p):
        batch = [samples[i] for i in part]
        answer_tokens = sum(len(s.tokens) for s in batch)                # Σ_i|o_i| of the mini-batch
        split = [[m for m in micro_batches(batch[r::world], cfg.micro_batch_tokens) if m]
                 for r in range(world)]                                  # each rank's micro-batches
        optimizer.zero_grad(set_to_none=True)
        # every rank runs as many micro-batches (FSDP gathers and reduces each unit together):
        # a rank short of answers runs one of the batch with weight 0
        for k in range(max(len(m) for m in split)):
            micro, weight = (split[rank][k], world) if k < len(split[rank]) else (batch[:1], 0)
            with autocast:
                logprobs, old, mask, ent = sequence_logprobs(model, micro, cfg.temperature, cfg.logprob_chunk)
            adv = torch.tensor([s.advantage for s in micro], device=logprobs.device)
            ref = None
            if cfg.kl_coef:
                with torch.no_grad(), autocast:
                    ref = sequence_logprobs(reference, micro, cfg.temperature, cfg.logprob_chunk)[0]
            loss, st = grpo_loss(logprobs, old, adv, mask, cfg.eps_low, cfg.eps_high,
                                 token_level=cfg.token_level, kl_coef=cfg.kl_coef, ref_logprobs=ref)
            # the part's share of the mini-batch's mean: its tokens (Eq. 1) or its answers (per-answer mean)
            share = (st.tokens / max(answer_tokens, 1) if cfg.token_level else len(micro) / len(batch))
            # FSDP averages the ranks' gradients: × world turns that average into their sum
            (loss * (share * weight)).backward()
            if weight:
                stats.append(st)
                entropy += (ent * mask).sum().item()
                tokens += int(mask.sum().item())
        norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                              cfg.grad_clip)
        norms.append((norm.full_tensor() if hasattr(norm, "full_tensor") else norm).item())
        optimizer.step()
        updates += 1
    stats = [s for part in parallel.gather(stats) for s in part]        # every rank's answers
    entropy, tokens = sum(parallel.gather(entropy)), sum(parallel.gather(tokens))
    weight = [s.tokens for s in stats]
    mean = lambda xs: sum(x * w for x, w in zip(xs, weight)) / max(sum(weight), 1)   # noqa: E731
    return dict(loss=mean([s.loss for s in stats]), clip_low=mean([s.clip_low for s in stats]),
                clip_high=mean([s.clip_high for s in stats]),
                ratio=mean([s.ratio_mean for s in stats]), kl=mean([s.kl for s in stats]),
                entropy=entropy / max(tokens, 1), grad_norm=sum(norms) / len(norms),
                updates=updates)


def freeze_mtp(model) -> None:
    """MTP layers keep their weights during RL; only the main stack learns."""
    for p in model.model.mtp_layers.parameters():
        p.requires_grad_(False)


def heldout_pass(model, tokenizer, problems: list[dict], cfg: RLSection, seed: int = 0) -> dict:
    """Held-out pass@1 (math and code separately, math per tier) at the evaluation settings.

    Code pass@1 counts a program that passes every test; `code_soft` is the mean soft
    test-difficulty reward, the same yardstick whichever reward a run trained with.
    """
    r = solve_rate(model, tokenizer, problems, samples=cfg.eval_samples,
                   temperature=cfg.eval_temperature, top_p=0.95,
                   max_new_tokens=cfg.eval_max_new_tokens, seed=seed, scheme="soft")
    code = [row["reward"] for row in r["rows"] if row["domain"] == "code"]
    answers = Counter(str(row["tier"]) for row in r["rows"] if row["domain"] == "math")
    return dict(pass_at_1=r["pass_at_1"], math=r["math"], code=r["code"],
                code_soft=sum(code) / len(code) if code else None,
                code_problems={row["id"]: row["pass_at_1"] for row in r["rows"] if row["domain"] == "code"},
                by_tier={str(k): v for k, v in r["by_tier"].items()},
                answers=len(r["rows"]) * r["samples"],          # sampled answers behind pass_at_1
                answers_by_tier={t: n * r["samples"] for t, n in answers.items()})


def start_evaluation(model, tokenizer, problems: list[dict], cfg: RLSection, seed: int,
                     path: Path | None) -> dict:
    """`heldout_pass` of the start model, kept in (and reused from) `path` when one is given."""
    if path is not None and path.exists():
        return json.loads(path.read_text())
    result = heldout_pass(model, tokenizer, problems, cfg, seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")     # runs side by side may both write it
        tmp.write_text(json.dumps(result))
        tmp.replace(path)
    return result


@dataclass
class GRPOState:
    step: int = 0
    rollouts: int = 0
    seconds: float = 0.0
    sampler: dict = field(default_factory=dict)      # the problem sampler's easy pool and RNG


def train_grpo(model, tokenizer, problems: list[dict], cfg: RLSection, out_dir: Path,
               heldout: list[dict] | None = None, steps: int | None = None, seed: int = 0,
               executor: RewardExecutor | None = None, backend: RolloutBackend | None = None,
               progress: bool = True, dtype=torch.float32, compile: bool = False,
               tracker: str = "none", easy_pool: list[str] = (),
               activation_checkpointing: bool = False, async_checkpoints: bool = False,
               start_eval: Path | None = None) -> list[dict]:
    """Train `model` in place with GRPO for `steps` (default cfg.steps); returns the metric lines.

    Metrics go to out_dir/metrics.jsonl (held-out pass@1 at step 0, every `eval_every` steps and
    at the end), checkpoints to out_dir/checkpoints/; a run resumes from the newest good one. The
    easy data pool starts with the ids in `easy_pool` (a run that continues another keeps its
    pool) and ends in out_dir/easy_pool.json. `start_eval`: a JSON file holding the step-0
    held-out evaluation, read when it exists and written when not (runs that start from the same
    model with the same evaluation settings and seed share it).
    """
    steps = cfg.steps if steps is None else steps
    freeze_mtp(model)
    if cfg.kl_coef and parallel.init()[1] > 1:
        raise ValueError("The KL ablation (rl.kl_coef > 0) runs in one process: launch it without torchrun.")
    reference = copy.deepcopy(model).eval() if cfg.kl_coef else None      # π_ref: the start
    # Adam's default betas and no weight decay, as the GRPO runs have always used
    run = Run(out_dir, model, lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.999), dtype=dtype,
              compile=compile, checkpoint_every=cfg.checkpoint_every, tracker=tracker,
              progress=progress, activation_checkpointing=activation_checkpointing,
              async_checkpoints=async_checkpoints)
    world = parallel.world_size()
    sampler = ProblemSampler(problems, cfg.easy_alpha, cfg.easy_filter, seed)
    if cfg.easy_filter:
        sampler.easy = [i for i in easy_pool if i in sampler.by_id]
    state = run.resume(GRPOState())
    if state.sampler:
        sampler.restore(state.sampler)
    # rank 0 generates, scores and evaluates: with the policy itself in one process, with a whole
    # copy of it under torchrun (None on the other ranks), refreshed after every step
    policy = parallel.whole_model(run.model)
    if run.main:
        policy.to(run.device)
        backend = backend or EngineRollout(policy, tokenizer, cfg.temperature, cfg.top_p,
                                           cfg.max_new_tokens, cfg.rollout_batch)
        backend.set_policy(state.step)              # the policy version: steps taken so far
    # a backend with weights of its own (not the policy object itself) is sent them after each step
    sync = parallel.broadcast(bool(run.main and hasattr(backend, "load")
                                   and getattr(backend, "model", None) is not policy))
    own_executor = executor is None and run.main
    executor = executor or (RewardExecutor(cfg.reward_workers, cfg.code_scheme) if run.main else None)
    generator = torch.Generator().manual_seed(seed)
    cache: dict = {}
    lines = []
    try:
        if state.step == 0 and heldout and run.main:
            lines.append(run.log(0, heldout=start_evaluation(policy, tokenizer, heldout, cfg, seed, start_eval)))
        bar = run.progress(steps, state.step, desc="GRPO")
        model.train()
        while state.step < steps:
            share_cores()                           # a run left alone in a notebook's batch: every core
            t0 = time.perf_counter()
            groups = info = None
            if run.main:
                groups, info = collect_groups(backend, executor, sampler, tokenizer, cfg,
                                              seed * 100_003 + state.step, cache)
            # every rank gets the step's groups (and the sampler as rank 0 left it)
            groups, info, drawn = parallel.broadcast((groups, info, sampler.state()))
            if not run.main:
                sampler.restore(drawn)
            t_rollout = time.perf_counter() - t0
            result = update(run.forward, run.optimizer, groups, cfg, generator, reference, run.autocast)
            state.step += 1
            if world > 1:
                parallel.whole_model(run.model, into=policy)    # rank 0's copy: the new weights
            if sync:                                # every rank gathers, rank 0 sends
                push_weights(run.model, backend if run.main else None, state.step)
            elif run.main:
                backend.set_policy(state.step)      # every rollout has finished: on-policy
            state.rollouts += info["rollouts"]
            seconds = time.perf_counter() - t0
            state.seconds += seconds
            rewards = info["rewards"]
            batch_rollouts = cfg.batch_prompts * cfg.group_size
            line = dict(reward=sum(rewards) / max(len(rewards), 1),
                        valid_groups=len(groups), rollouts=info["rollouts"],
                        # groups trained on that carry signal (all of them under dynamic sampling)
                        signal_groups=sum(not zero_advantage([s.scored.reward for s in g]) for g in groups),
                        # rollouts it takes to fill one batch of `batch_prompts` groups with signal
                        rollouts_per_valid_batch=(info["rollouts"] * cfg.batch_prompts / len(groups)
                                                  if groups else None),
                        # the same for the main pool's draws alone (easy-pool draws are solved on
                        # purpose; report §3.3.2 is about what solved prompts cost the main pool)
                        main_pool_groups=info["main_groups"], main_pool_signal_groups=info["main_signal"],
                        main_rollouts_per_valid_batch=(batch_rollouts * info["main_groups"] / info["main_signal"]
                                                       if info["main_signal"] else None),
                        zero_advantage_fraction=info["zero_advantage"] / max(info["groups"], 1),
                        easy_pool=len(sampler.easy), easy_draws=sampler.easy_draws,
                        draws=sampler.draws,
                        response_length=sum(info["lengths"]) / max(len(info["lengths"]), 1),
                        unscored=sum(info["unscored"].values()), unscored_reasons=dict(info["unscored"]),
                        rounds=info["rounds"], rollout_s=t_rollout, step_s=seconds,
                        rollout_mode=info["mode"], generator_idle_ratio=info["idle_ratio"],
                        sample_waste=info["sample_waste"], virtual_rollout_steps=info["virtual_steps"],
                        total_rollouts=state.rollouts, wall_s=state.seconds, **result)
            if heldout and run.main and (state.step % cfg.eval_every == 0 or state.step == steps):
                line["heldout"] = heldout_pass(policy, tokenizer, heldout, cfg, seed)
            lines.append(run.log(state.step, **line))
            bar.update(1)
            bar.set_postfix(reward=f"{line['reward']:.3f}", valid=len(groups))
            state.sampler = sampler.state()
            run.checkpoint(state, force=state.step == steps)
        if run.main:
            (Path(out_dir) / "easy_pool.json").write_text(json.dumps(sampler.easy))
    finally:
        run.close()
        if own_executor:
            executor.close()
    return lines
