"""Profiles: one YAML file sizes every stage of the kit (`smoke`, `toy`, `gpu`, or your own file).

The same schema serves the notebooks (papermill parameters `profile` and `overrides`) and the
CLI (`--config`, `--set section.key=value`). Each stage owns one section; a section's fields, their
defaults and what each field allows live in its dataclass below, declared with `setting`:

    peak_lr: float = setting(2e-3, "> 0")              # a number > 0
    log_every: int = setting(10, "≥ 1", fingerprint=False)

Every field is checked (and converted: YAML reads `3e-3` as a string) when the section is made,
so a wrong value stops the load with one sentence naming the file and the key. A field declared
`fingerprint=False` cannot change what a run produces (how often it logs, where it reports);
`artifacts.fingerprint` leaves it out, so changing it reuses the artifacts already built.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import operator
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config import PRESETS, MiMoConfig, preset

PROFILE_DIR = Path(__file__).parent / "profiles"
TRACKERS = ("none", "tensorboard", "wandb")


class SettingError(ValueError):
    """A wrong setting: its key (relative to the section that raised it) and what is wrong."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key} {problem}")

    def within(self, section: str) -> "SettingError":
        """The same error seen from one section further out: `peak_lr` → `pretrain.peak_lr`."""
        return SettingError(f"{section}.{self.key}", self.problem)


def setting(default, allowed: str | tuple = "", *, length: int | None = None,
            fingerprint: bool = True):
    """A profile field. `allowed`: a range ("> 0", "≥ 1", "[0, 1]", "(0, 0.5)"; for a list, of
    each item) or a tuple of choices; `length`: a list's length; `fingerprint=False`: the field
    cannot change a result, so artifacts are reused when only it changes."""
    meta = {"allowed": allowed, "length": length, "fingerprint": fingerprint}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def check_fields(section) -> None:
    """Convert and check every field of `section` against its type and `setting`; a wrong one
    stops with a sentence that starts with the field's name (`_build` prefixes the section's)."""
    hints = typing.get_type_hints(type(section))
    for f in dataclasses.fields(section):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            continue
        value = getattr(section, f.name)
        checked = _checked(value, kind, f.metadata.get("allowed", ""), f.metadata.get("length"))
        if checked is _WRONG:
            raise SettingError(f.name, f"must be {_describe(kind, f.metadata)}, got {value!r}.")
        setattr(section, f.name, checked)


_WRONG = object()
_NAMES = {int: "whole number", float: "number", str: "string", bool: "true or false"}
_COMPARE = {">": operator.gt, "≥": operator.ge, "<": operator.lt, "≤": operator.le}


def _checked(value, kind, allowed, length):
    """`value` converted to `kind` and within `allowed`, or _WRONG."""
    if isinstance(kind, types.UnionType):                  # `float | None`: empty is allowed
        if value is None:
            return None
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    if typing.get_origin(kind) is list:
        if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
            return _WRONG
        items = [_checked(item, typing.get_args(kind)[0], allowed, None) for item in value]
        return _WRONG if any(item is _WRONG for item in items) else items
    if kind is dict:
        return value if isinstance(value, dict) else _WRONG
    value = _scalar(value, kind)
    if value is _WRONG or not allowed:
        return value
    if isinstance(allowed, tuple):
        return value if value in allowed else _WRONG
    return value if _within(value, allowed) else _WRONG


def _scalar(value, kind):
    """`value` as a `kind` (bool, int, float, str), or _WRONG. A bool is never a number; a float
    may be written `3e-3`, which YAML reads as a string; an int may be a whole float (`2.0e6`)."""
    if kind is bool or isinstance(value, bool):
        return value if kind is bool and isinstance(value, bool) else _WRONG
    if kind is str:
        return value if isinstance(value, str) else _WRONG
    if kind is int and isinstance(value, int):
        return value
    if isinstance(value, (int, float, str)):
        try:
            number = float(value)
        except ValueError:
            return _WRONG
        if not math.isfinite(number):
            return _WRONG
        if kind is float:
            return number
        if kind is int and number.is_integer():
            return int(number)
    return _WRONG


def _within(value, allowed: str) -> bool:
    """Whether `value` lies in `allowed`: "≥ 1", "> 0", or an interval such as "(0, 0.5]"."""
    if allowed[0] in "([":
        low, high = (float(x) for x in allowed[1:-1].split(","))
        above = value > low if allowed[0] == "(" else value >= low
        below = value < high if allowed[-1] == ")" else value <= high
        return above and below
    op, bound = allowed.split()
    return _COMPARE[op](value, float(bound))


def _describe(kind, meta) -> str:
    """What a field allows, in words: "a number > 0", "a list of 2 numbers in [0, 1)"."""
    allowed, length = meta.get("allowed", ""), meta.get("length")
    optional = isinstance(kind, types.UnionType)
    if optional:
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    if typing.get_origin(kind) is list:
        item = typing.get_args(kind)[0]
        words = f"a list of {f'{length} ' if length else ''}{_NAMES[item]}s"
    elif kind is dict:
        words = "a mapping"
    elif isinstance(allowed, tuple):
        words = "one of " + ", ".join(allowed[:-1]) + f" or {allowed[-1]}"
    else:
        words = "true or false" if kind is bool else f"a {_NAMES[kind]}"
    if isinstance(allowed, str) and allowed:
        words += f" in {allowed}" if allowed[0] in "([" else f" {allowed}"
    return words + (" (or empty)" if optional else "")


@dataclass
class ModelSection:
    preset: str = setting("toy", tuple(PRESETS))
    overrides: dict = setting({})   # any MiMoConfig field, e.g. vocab_size

    def __post_init__(self):
        check_fields(self)
        try:
            self.config()             # an impossible size stops at load, not at the first build
        except ValueError as err:
            raise SettingError("overrides", f"do not make a valid model: {err}") from None

    def config(self, **more) -> MiMoConfig:
        return preset(self.preset, **{**self.overrides, **more})


DOMAINS = ("general", "math", "code", "synthetic_reasoning")


@dataclass
class StageSection:
    """One pretraining stage's data (report §2.1): token share per domain and context length."""
    weights: dict = setting({})                # domain -> share of the stage's tokens, sum 1
    seq_len: int = setting(256, "≥ 8")         # packed sequence length (the stage's context)
    low_value_keep: float = setting(1.0, "[0, 1]")   # share of tagger-flagged low-value docs kept

    def __post_init__(self):
        check_fields(self)
        unknown = set(self.weights) - set(DOMAINS)
        if unknown:
            raise SettingError("weights", f"names unknown domain(s) {sorted(unknown)}; the domains "
                                          f"are {list(DOMAINS)}.")
        if any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0
               for w in self.weights.values()):
            raise SettingError("weights", f"must be numbers ≥ 0, got {self.weights}.")
        total = sum(self.weights.values())
        if abs(total - 1) > 1e-6:
            raise SettingError("weights", f"are token shares and must sum to 1, but they sum to "
                                          f"{total:g}: rescale them.")


@dataclass
class DataSection:
    """Sizes of the pretraining corpus (notebook 01) and its three-stage mixture."""
    code_files: int = setting(200, "≥ 0")          # standard-library modules read as code (tests included)
    docstring_modules: int = setting(300, "≥ 0")   # non-test modules whose docstrings become prose pages
    pydoc_topics: int = setting(79, "≥ 0")         # sections of the language reference shipped in `pydoc_data`
    math_docs: int = setting(4000, "≥ 0")          # generated worked problems and expositions
    reasoning_docs: int = setting(2000, "≥ 0")     # step-by-step <think> solutions (stand-in for distilled data)
    low_value_docs: int = setting(600, "≥ 0")      # ads, boilerplate, job posts, generated code tables
    exact_copies: int = setting(200, "≥ 0")        # planted verbatim copies, for exact dedup to find
    near_copies: int = setting(200, "≥ 0")         # planted lightly edited copies, for MinHash to find
    max_doc_chars: int = setting(6000, "≥ 200")    # longer documents are split at a line break into parts
    heldout_fraction: float = setting(0.03, "(0, 0.5)")   # per-domain held-out documents for evaluation
    tagger_labelled: int = setting(1500, "≥ 0")    # labelled documents the quality tagger learns from
    stage1: StageSection = field(default_factory=lambda: StageSection(
        {"general": 0.6, "math": 0.15, "code": 0.25, "synthetic_reasoning": 0.0}, 256, 0.2))
    stage2: StageSection = field(default_factory=lambda: StageSection(
        {"general": 0.3, "math": 0.4, "code": 0.3, "synthetic_reasoning": 0.0}, 256, 0.2))
    stage3: StageSection = field(default_factory=lambda: StageSection(
        {"general": 0.2, "math": 0.4, "code": 0.3, "synthetic_reasoning": 0.1}, 512, 0.2))

    def __post_init__(self):
        check_fields(self)

    def stage(self, number: int) -> StageSection:
        if number not in (1, 2, 3):
            raise ValueError(f"MiMo pretrains in stages 1, 2 and 3; there is no stage {number!r}.")
        return getattr(self, f"stage{number}")


@dataclass
class TokenizerSection:
    """Byte-level BPE (notebook 02). Its vocabulary size is the model's `vocab_size`."""
    train_chars: int = setting(8_000_000, "≥ 10000")   # characters of training-split text the BPE learns merges from
    min_frequency: int = setting(2, "≥ 1")             # a pair must occur this often to become a merge

    def __post_init__(self):
        check_fields(self)


@dataclass
class PretrainSection:
    """Sizes of the pre-training run (notebook 04); the schedule's shape is the paper's."""
    total_tokens: int = setting(2_000_000, "≥ 1")
    peak_lr: float = setting(2e-3, "> 0")           # the paper: 1.07e-4 at 7B; small models take more
    batch_tokens: int = setting(8192, "≥ 1")        # full batch, in tokens (the paper: ≈21M)
    micro_batch: int = setting(16, "≥ 1")           # sequences per forward pass (gradient accumulation above)
    stage_fractions: list[float] = setting([0.6, 0.25, 0.15], "> 0", length=3)   # sum 1
    min_warmup_tokens: int = setting(50_000, "≥ 0")
    stage3_rope_theta: float = setting(640_000.0, "> 0")   # stage 3 raises the RoPE base (10k → 640k, report §2.3)
    mtp_loss_weight: list[float] = setting([0.3, 0.1], "≥ 0", length=2)
    #                                 λ of L = L_main + λ·L_mtp before and after the switch (report §2.3)
    mtp_switch: float | None = setting(None, "[0, 1]")   # share of the tokens at the switch; empty:
    #                                 the paper's 10.3T of 23.8T (`train/schedules.py`)
    weight_decay: float = setting(0.1, "≥ 0")
    betas: list[float] = setting([0.9, 0.95], "[0, 1)", length=2)
    grad_clip: float = setting(1.0, "> 0")
    log_every: int = setting(10, "≥ 1", fingerprint=False)        # optimiser steps between metric lines
    checkpoint_every: int = setting(50, "≥ 1", fingerprint=False) # steps between checkpoints (resume is exact)
    heldout_sequences: int = setting(16, "≥ 0")     # per domain, for the held-out loss at each stage's end

    def __post_init__(self):
        check_fields(self)
        if abs(sum(self.stage_fractions) - 1) > 1e-6:
            raise SettingError("stage_fractions", f"are the stages' token shares and must sum to 1, "
                                                  f"but they sum to {sum(self.stage_fractions):g}.")


@dataclass
class ProblemsSection:
    """Sizes of the verifiable problem suites (notebook 07, `mimo_lite/rl/problems.py`)."""
    math_per_tier: int = setting(200, "≥ 1")      # math problems per difficulty tier (4 tiers)
    code_families: int = setting(9, "[0, 9]")     # the first families of each tier of tasks/templates/code.yaml
    #                                               (tier 1: 5 families, tier 2: 9)
    code_variants: list[int] = setting([20, 3], "≥ 0", length=2)
    #                                               problems per family of code tier 1, 2 (a tier-1 family has
    #                                               one problem per constant: 10 to 100 of them; 0 leaves a tier out)
    typical_tests: int = setting(10, "≥ 0")       # random typical-case tests per code problem, besides edge and large
    heldout_fraction: float = setting(0.2, "(0, 1)")   # share of each tier (and of the code problems) held out
    more_code_variants: bool = setting(False)     # tier-2 families take their `more_variants` too (code.yaml):
    #                                               held-out tier-2 problems then have SFT siblings of their program

    def __post_init__(self):
        check_fields(self)


@dataclass
class InferenceSection:
    """Notebook 05: KV cache, continuous batching, MTP speculative decoding."""
    num_prompts: int = setting(64, "≥ 1")          # held-out reasoning prompts behind the acceptance figures
    max_new_tokens: int = setting(64, "≥ 1")       # room for a whole answer with its chain of thought
    batch_size: int = setting(32, "≥ 1")           # rows decoded together in the batched measurements
    timing_tokens: int = setting(512, "≥ 1")       # tokens timed with and without the KV cache
    mtp_layers: int = setting(3, "≥ 1")            # MTP layers at inference: 1 trained + 2 copies (report §2.2)
    mtp_finetune_steps: int = setting(120, "≥ 0")  # steps that fine-tune the copies (main model, layer 1 frozen)
    mtp_finetune_batch: int = setting(32, "≥ 1")   # sequences per fine-tuning step
    mtp_finetune_lr: float = setting(1e-3, "> 0")

    def __post_init__(self):
        check_fields(self)


@dataclass
class SFTSection:
    """Notebook 06: long-CoT SFT data and training (report §3.1, facts file §4.1)."""
    queries_per_tier: list[int] = setting([200, 1500, 300, 150], "≥ 0", length=4)
    #                               math queries per tier for the teacher (code: every problem);
    #                               weighted to the tiers a small model can learn
    max_candidates: int = setting(12, "≥ 1")        # teacher replies per query before cleaning, drawn 1..this
    incomplete_rate: float = setting(0.1, "[0, 1]") # share of replies the teacher cuts off mid-thought
    max_per_query: int = setting(8, "≥ 1")          # the report's cap on responses per query
    keep_code_variants: bool = setting(False, fingerprint=False)
    #                               decontamination drops only the held-out code problems, not their
    #                               family's other variants (same template, other constants); it
    #                               enters the SFT data's fingerprint, and through it the model's
    seq_len: int = setting(512, "≥ 8")              # packed row length (the report packs to 32,768)
    batch_tokens: int = setting(4096, "≥ 1")        # tokens per optimiser step (the report: 128 × 32,768)
    micro_batch: int = setting(8, "≥ 1")            # rows per forward pass
    lr: float = setting(5.6e-4, "> 0")              # constant; the report's 3e-5 is 0.28× its pre-training peak
    total_tokens: int = setting(400_000, "≥ 1")     # assistant tokens for the full fine-tune
    light_tokens: int = setting(100_000, "≥ 1")     # assistant tokens for the format-only (light) SFT
    lora_tokens: int = setting(400_000, "≥ 1")      # assistant tokens for the LoRA run
    lora_rank: int = setting(16, "≥ 1")
    lora_alpha: int = setting(32, "≥ 1")
    lora_lr: float = setting(3e-3, "> 0")           # adapters start at zero and take a larger step
    mtp_loss_weight: float = setting(0.1, "≥ 0")    # the MTP layer keeps training (λ of pre-training's end)
    weight_decay: float = setting(0.0, "≥ 0")
    betas: list[float] = setting([0.9, 0.95], "[0, 1)", length=2)
    grad_clip: float = setting(1.0, "> 0")
    log_every: int = setting(5, "≥ 1")              # the SFT model keeps its metrics (first and final loss)
    checkpoint_every: int = setting(50, "≥ 1", fingerprint=False)   # resume is exact
    eval_max_new_tokens: int = setting(128, "≥ 1", fingerprint=False)
    #                               reply budget when notebook 06 measures held-out pass@1 (not training)

    def __post_init__(self):
        check_fields(self)


@dataclass
class RLSection:
    """GRPO (notebooks 08 and 08b, `mimo_lite/rl/`). The paper (report §3.3.3): batch 512,
    mini-batch 32, 16 updates per step, LR 1e-6, temperature 1.0, top-p 1.0; ε and G not stated
    (facts §4.3, §4.6)."""
    steps: int = setting(60, "≥ 1")                  # GRPO steps of the main runs (RL and RL-Zero)
    # The ablations of notebook 08b (`rl.runs.ablation_runs`). A run's fingerprint holds the
    # settings it ran with, so these plans stay out of it: resizing them keeps the main runs.
    ablation_steps: int = setting(30, "≥ 1", fingerprint=False)   # GRPO steps of the ablations' reference
    code_ablation_steps: int = setting(10, "≥ 1", fingerprint=False)   # each code-reward run (08b §1)
    code_ablation_seeds: int = setting(1, "≥ 1", fingerprint=False)    # seeds per code reward scheme (08b §1)
    code_ablation_tiers: list[int] = setting([1], "[1, 2]", fingerprint=False)   # code tiers of those runs
    ablation: dict = setting({}, fingerprint=False)  # overrides for the easy-pool and dynamic-sampling runs
    #                               (08b §2, §3): their `steps`, smaller batches (more runs in the same time)
    ablation_seeds: int = setting(2, "≥ 1", fingerprint=False)    # seeds of each dynamic-sampling arm
    batch_prompts: int = setting(8, "≥ 1")           # groups with signal per step (after dynamic sampling)
    group_size: int = setting(8, "≥ 2")              # G answers per prompt (advantages compare within a group)
    oversample: float = setting(2.0, "≥ 1")          # prompts drawn per missing group, before their pass rates are known
    max_rounds: int = setting(4, "≥ 1")              # rollout rounds per step before training on what was found
    updates_per_step: int = setting(2, "≥ 1")        # mini-batch updates per step (the paper: 512 / 32 = 16)
    lr: float = setting(2.0e-5, "> 0")
    eps_low: float = setting(0.2, "[0, 1]")          # DAPO's values; MiMo states none
    eps_high: float = setting(0.28, "≥ 0")
    grad_clip: float = setting(1.0, "> 0")
    # The update's memory at 7B (scaled/): answer tokens per pass through the lm_head (a pass holds
    # chunk × V logits, recomputed in the backward), and padded tokens per micro-batch (gradients
    # accumulate to the mini-batch's; Eq. 1's mean stays the mini-batch's). 0: all at once, as the
    # notebooks run. Either one sums the same terms in another order: float rounding, nothing else.
    logprob_chunk: int = setting(0, "≥ 0", fingerprint=False)
    micro_batch_tokens: int = setting(0, "≥ 0", fingerprint=False)
    temperature: float = setting(1.0, "> 0")
    top_p: float = setting(1.0, "(0, 1]")
    max_new_tokens: int = setting(96, "≥ 1")
    rollout_batch: int = setting(64, "≥ 1")          # sequences the generator decodes together
    dynamic_sampling: bool = setting(True)
    # how a step's rollouts are scheduled (report §3.4.1, Table 2; `rl/seamless.py`): naive rounds
    # with a barrier, or the Seamless Rollout Engine's continuous rollout, + async reward, + early termination
    rollout_mode: str = setting("naive", ("naive", "no_dynamic_sampling", "continuous", "async_reward",
                                          "early_termination"))
    easy_filter: bool = setting(True)
    easy_alpha: float = setting(0.1, "[0, 1]")       # probability of drawing from the easy data pool (report §3.3.2)
    token_level: bool = setting(True)                # False: per-answer mean (ablation)
    kl_coef: float = setting(0.0, "≥ 0")             # MiMo: no KL (ablation switch)
    code_scheme: str = setting("soft", ("vanilla", "strict", "soft"))   # code reward (report §3.3.1)
    math_tiers: list[int] = setting([1, 2, 3, 4], "[1, 4]")   # math tiers trained on
    code_tiers: list[int] = setting([1, 2], "[1, 2]")   # code tiers trained on ([]: math only)
    zero: dict = setting({})                         # overrides for RL-Zero (from the base model)
    eval_every: int = setting(20, "≥ 1")             # steps between held-out pass@1 measurements (the run records them)
    eval_samples: int = setting(4, "≥ 1")            # sampled answers per held-out problem
    eval_temperature: float = setting(0.6, "> 0")    # the paper evaluates at 0.6, top-p 0.95
    eval_max_new_tokens: int = setting(96, "≥ 1")
    checkpoint_every: int = setting(20, "≥ 1", fingerprint=False)   # resume is exact
    reward_workers: int = setting(1, "≥ 1", fingerprint=False)      # processes of the reward executor

    def __post_init__(self):
        check_fields(self)
        if not self.dynamic_sampling and self.rollout_mode not in ("naive", "no_dynamic_sampling"):
            raise SettingError("rollout_mode", f"{self.rollout_mode!r} is a way of doing dynamic sampling, "
                                               "but dynamic_sampling is false: set it true, or choose "
                                               "rollout_mode no_dynamic_sampling.")
        for key in ("zero", "ablation"):             # the overrides are checked now, at load
            extra = getattr(self, key)
            nested = sorted({"zero", "ablation"} & set(extra))
            if nested:
                raise SettingError(f"{key}.{nested[0]}", "is not allowed: the overrides are keys "
                                                          "of the rl section.")
            try:
                if extra:
                    _build(RLSection, {**dataclasses.asdict(self), **extra, "zero": {}, "ablation": {}})
            except SettingError as err:
                raise err.within(key) from None

    def with_overrides(self, **overrides) -> "RLSection":
        """A copy with some fields replaced (checked like the profile)."""
        try:
            return _build(RLSection, {**dataclasses.asdict(self), **overrides})
        except SettingError as err:
            raise err.within("rl") from None


@dataclass
class SeamlessSection:
    """Notebook 09: the Seamless Rollout Engine (report §3.4.1, facts file §5.1), measured on the
    SFT model and simulated at the paper's size. The measured workload is a step of
    `batch_prompts` valid groups of G answers drawn from a code-heavy mix of the training problems
    (code rewards run in the sandbox: their latency is what async reward hides), decoded on one
    engine of `rollout_batch` rows; every rollout mode sees the same seeded workload."""
    steps: int = setting(3, "≥ 1")                  # measured steps per rollout mode (the paper: a 5-step trace)
    batch_prompts: int = setting(8, "≥ 1")          # B: valid groups a measured step collects
    group_size: int = setting(8, "≥ 2")             # G answers per prompt
    rollout_batch: int = setting(32, "≥ 1")         # rows of the engine (one generator)
    max_new_tokens: int = setting(80, "≥ 1")        # the length cap: the tail of the response lengths
    workload_size: int = setting(32, "≥ 2")         # problems in the mix the steps draw from
    code_share: float = setting(0.5, "[0, 1]")      # share of the mix that is code (the rest: rl.math_tiers)
    code_tiers: list[int] = setting([1, 2], "[1, 2]")   # the code tiers of the mix
    reward_workers: int = setting(2, "≥ 1")         # processes scoring answers (the virtual clock's reward servers)
    validation_problems: int = setting(32, "≥ 1")   # held-out problems of Table 3 (the paper: its whole set)
    validation_samples: int = setting(4, "≥ 1")     # answers per held-out problem
    sim_steps: int = setting(3, "≥ 1")              # simulated steps per scheduler at the paper's settings
    sweep_workers: list[int] = setting([8, 16, 32, 64, 128, 256], "≥ 1")   # cluster sizes of the sweep
    grpo_steps: int = setting(10, "≥ 1")            # steps of the naive and the seamless GRPO run
    grpo: dict = setting({})                        # overrides of the rl section for both GRPO runs

    def __post_init__(self):
        check_fields(self)
        try:
            if self.grpo:
                RLSection().with_overrides(**self.grpo)
        except SettingError as err:
            raise SettingError(f"grpo.{err.key.removeprefix('rl.')}", err.problem) from None


@dataclass
class EvalSection:
    """Notebook 10 and `mimo-lite report`: Base, SFT, RL-Zero and RL on the same held-out problems,
    sampled as the paper evaluates (temperature 0.6, top-p 0.95, pass@1 averaged over samples;
    facts file §6)."""
    math_problems: int = setting(40, "≥ 0")     # held-out math problems, spread evenly over the tiers
    code_problems: int = setting(40, "≥ 0")     # held-out code problems, spread evenly over the tiers
    samples: int = setting(16, "≥ 1")           # sampled replies per problem (the paper: 32 for AIME, 8 for LCB)
    k: list[int] = setting([1, 2, 4, 8, 16], "≥ 1")   # the pass@k curve's points (each ≤ samples)
    temperature: float = setting(0.6, "> 0")    # the paper's evaluation temperature
    top_p: float = setting(0.95, "(0, 1]")
    max_new_tokens: int = setting(256, "≥ 1")   # reply budget (the paper: 32,768)
    batch_size: int = setting(32, "≥ 1", fingerprint=False)   # rows decoded together (each reply has its own seed)

    def __post_init__(self):
        check_fields(self)
        if max(self.k) > self.samples:
            raise SettingError("k", f"asks for pass@{max(self.k)} but samples is {self.samples}: pass@k "
                                    f"needs at least k samples per problem; raise samples or lower k.")
        if self.math_problems + self.code_problems == 0:
            raise SettingError("math_problems", "and code_problems are both 0: evaluate at least one problem.")


@dataclass
class Profile:
    name: str = setting("profile")
    seed: int = setting(0, "≥ 0")
    device: str = setting("cpu", ("cpu", "cuda", "auto"))       # "auto": cuda when available
    dtype: str = setting("float32", ("float32", "bfloat16", "float16"))   # training/inference dtype
    threads: int = setting(0, "≥ 0", fingerprint=False)   # CPU threads for torch; 0 keeps torch's default
    processes: int = setting(1, "≥ 1", fingerprint=False)   # independent runs built side by side (artifacts.build_all)
    compile: bool = setting(False, fingerprint=False)      # torch.compile the model in every trainer (GPU)
    # every trainer recomputes each decoder block's and MTP layer's activations in the backward
    # instead of keeping them: less memory, one more forward of the blocks, the same gradients
    activation_checkpointing: bool = setting(False, fingerprint=False)
    # under torchrun every trainer writes its sharded checkpoints in the background (DCP's
    # async_save): training goes on while the shards are written; one process saves synchronously
    async_checkpoints: bool = setting(False, fingerprint=False)
    tracker: str = setting("none", TRACKERS, fingerprint=False)   # where every trainer also logs
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    pretrain: PretrainSection = field(default_factory=PretrainSection)
    problems: ProblemsSection = field(default_factory=ProblemsSection)
    inference: InferenceSection = field(default_factory=InferenceSection)
    sft: SFTSection = field(default_factory=SFTSection)
    rl: RLSection = field(default_factory=RLSection)
    seamless: SeamlessSection = field(default_factory=SeamlessSection)
    eval: EvalSection = field(default_factory=EvalSection)

    def __post_init__(self):
        check_fields(self)

    @property
    def torch_device(self):
        import torch
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def use_threads(self) -> None:
        """Apply `threads`. On 2 cores, 2 threads run ~5× slower than 1 as soon as any other
        process wants a core (the threads spin waiting for each other); toy profiles pick 1."""
        if self.threads:
            import torch
            torch.set_num_threads(self.threads)

    @property
    def torch_dtype(self):
        import torch
        return getattr(torch, self.dtype)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path, overrides: dict | None = None) -> Profile:
    """`load_profile("toy")`, `load_profile("my_profile.yaml")`, or with overrides of single keys:
    `load_profile("smoke", {"pretrain.log_every": 5})` (a string value is read as YAML: "3e-3")."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ValueError(f"Unknown profile {str(name_or_path)!r}: choose one of "
                             f"{available_profiles()} or pass the path of a YAML file.")
    elif not path.exists():
        raise ValueError(f"Profile file {str(path)!r} does not exist: check the path.")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"Profile file {str(path)!r} must hold a YAML mapping of sections.")
    raw.setdefault("name", path.stem)
    try:
        profile = _build(Profile, raw)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return as_profile(profile, overrides)


def as_profile(profile: str | Path | Profile, overrides: dict | None = None) -> Profile:
    """A loaded profile, given one or its name/path (library entry points accept all three),
    with `overrides` ({"section.key": value}) applied and checked like the file."""
    if not isinstance(profile, Profile):
        return load_profile(profile, overrides)
    if not overrides:
        return profile
    raw = dataclasses.asdict(profile)
    for key, value in overrides.items():
        *sections, name = str(key).split(".")
        node = raw
        for part in sections:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or name not in node or key == "name":
            raise SettingError(f"override {key}", "is not a setting: write section.key with a key "
                                                  "of the profile file, such as pretrain.log_every or seed.")
        node[name] = _yaml_scalar(value) if isinstance(value, str) else value
    try:
        return _build(Profile, raw)
    except SettingError as err:
        raise SettingError(f"override {err.key}", err.problem) from None


def _yaml_scalar(text: str):
    """A command-line value read as YAML reads it: "3e-3", "true", "[1, 2]", "toy"."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _build(cls, raw: dict):
    """Dataclass from a dict, refusing unknown keys so that a typo never passes silently; a
    SettingError from a nested section comes out with the section's name in front of its key."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for name in raw:
        if name not in fields:
            raise SettingError(name, f"is an unknown key; the keys of {cls.__name__} are "
                                     f"{sorted(fields)}.")
    kwargs = {}
    for name, value in raw.items():
        section = hints[name]
        if dataclasses.is_dataclass(section):   # a nested section: build it the same way
            if value is not None and not isinstance(value, dict):
                raise SettingError(name, f"is a section and must be a mapping, got {value!r}.")
            try:
                value = _build(section, value or {})
            except SettingError as err:
                raise err.within(name) from None
        kwargs[name] = value
    return cls(**kwargs)
