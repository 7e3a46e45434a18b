"""Profiles: one YAML file sizes every stage of the kit (`smoke`, `toy`, `gpu`, or your own file).

The same schema serves the notebooks (papermill parameter `profile`) and the CLI (`--config`).
Each stage owns one section; a section's fields and defaults live in its dataclass below.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config import MiMoConfig, preset

PROFILE_DIR = Path(__file__).parent / "profiles"


@dataclass
class ModelSection:
    preset: str = "toy"
    overrides: dict = field(default_factory=dict)   # any MiMoConfig field, e.g. vocab_size

    def config(self, **more) -> MiMoConfig:
        return preset(self.preset, **{**self.overrides, **more})


DOMAINS = ("general", "math", "code", "synthetic_reasoning")


@dataclass
class StageSection:
    """One pretraining stage's data (report §2.1): token share per domain and context length."""
    weights: dict = field(default_factory=dict)   # domain -> share of the stage's tokens, sum 1
    seq_len: int = 256                            # packed sequence length (the stage's context)
    low_value_keep: float = 1.0                   # share of tagger-flagged low-value docs kept


@dataclass
class DataSection:
    """Sizes of the pretraining corpus (notebook 01) and its three-stage mixture."""
    code_files: int = 200          # standard-library modules read as code (tests included)
    docstring_modules: int = 300   # non-test modules whose docstrings become prose pages
    pydoc_topics: int = 79         # sections of the language reference shipped in `pydoc_data`
    math_docs: int = 4000          # generated worked problems and expositions
    reasoning_docs: int = 2000     # step-by-step <think> solutions (stand-in for distilled data)
    low_value_docs: int = 600      # ads, boilerplate, job posts, generated code tables
    exact_copies: int = 200        # planted verbatim copies, for exact dedup to find
    near_copies: int = 200         # planted lightly edited copies, for MinHash to find
    max_doc_chars: int = 6000      # longer documents are split at a line break into parts
    heldout_fraction: float = 0.03 # per-domain held-out documents for evaluation
    tagger_labelled: int = 1500    # labelled documents the quality tagger learns from
    stage1: StageSection = field(default_factory=lambda: StageSection(
        {"general": 0.6, "math": 0.15, "code": 0.25, "synthetic_reasoning": 0.0}, 256, 0.2))
    stage2: StageSection = field(default_factory=lambda: StageSection(
        {"general": 0.3, "math": 0.4, "code": 0.3, "synthetic_reasoning": 0.0}, 256, 0.2))
    stage3: StageSection = field(default_factory=lambda: StageSection(
        {"general": 0.2, "math": 0.4, "code": 0.3, "synthetic_reasoning": 0.1}, 512, 0.2))

    def __post_init__(self):
        for name in ("code_files", "docstring_modules", "pydoc_topics", "math_docs", "reasoning_docs",
                     "low_value_docs", "exact_copies", "near_copies", "tagger_labelled"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"data.{name} must be a whole number ≥ 0, got {value!r}.")
        if not isinstance(self.max_doc_chars, int) or self.max_doc_chars < 200:
            raise ValueError(f"data.max_doc_chars must be an integer ≥ 200, got "
                             f"{self.max_doc_chars!r}.")
        if not 0 < self.heldout_fraction < 0.5:
            raise ValueError(f"data.heldout_fraction must lie strictly between 0 and 0.5, got "
                             f"{self.heldout_fraction!r}.")
        for number in (1, 2, 3):
            _check_stage(f"data.stage{number}", self.stage(number))

    def stage(self, number: int) -> StageSection:
        if number not in (1, 2, 3):
            raise ValueError(f"MiMo pretrains in stages 1, 2 and 3; there is no stage {number!r}.")
        return getattr(self, f"stage{number}")


def _check_stage(where: str, stage: StageSection) -> None:
    unknown = set(stage.weights) - set(DOMAINS)
    if unknown:
        raise ValueError(f"{where}.weights names unknown domain(s) {sorted(unknown)}; the domains "
                         f"are {list(DOMAINS)}.")
    if any(not isinstance(w, (int, float)) or w < 0 for w in stage.weights.values()):
        raise ValueError(f"{where}.weights must be numbers ≥ 0, got {stage.weights}.")
    total = sum(stage.weights.values())
    if abs(total - 1) > 1e-6:
        raise ValueError(f"{where}.weights are token shares and must sum to 1, but they sum to "
                         f"{total:g}: rescale them.")
    if not isinstance(stage.seq_len, int) or stage.seq_len < 8:
        raise ValueError(f"{where}.seq_len must be an integer ≥ 8, got {stage.seq_len!r}.")
    if not 0 <= stage.low_value_keep <= 1:
        raise ValueError(f"{where}.low_value_keep is the share of low-value documents kept and "
                         f"must lie in [0, 1], got {stage.low_value_keep!r}.")


@dataclass
class TokenizerSection:
    """Byte-level BPE (notebook 02). Its vocabulary size is the model's `vocab_size`."""
    train_chars: int = 8_000_000   # characters of training-split text the BPE learns merges from
    min_frequency: int = 2         # a pair must occur this often to become a merge

    def __post_init__(self):
        if not isinstance(self.train_chars, int) or self.train_chars < 10_000:
            raise ValueError(f"tokenizer.train_chars must be an integer ≥ 10000, got "
                             f"{self.train_chars!r}.")
        if not isinstance(self.min_frequency, int) or self.min_frequency < 1:
            raise ValueError(f"tokenizer.min_frequency must be an integer ≥ 1, got "
                             f"{self.min_frequency!r}.")


@dataclass
class PretrainSection:
    """Sizes of the pre-training run (notebook 04); the schedule's shape is the paper's."""
    total_tokens: int = 2_000_000
    peak_lr: float = 2e-3                 # the paper: 1.07e-4 at 7B; small models take more
    batch_tokens: int = 8192              # full batch, in tokens (the paper: ≈21M)
    micro_batch: int = 16                 # sequences per forward pass (gradient accumulation above)
    stage_fractions: list = field(default_factory=lambda: [0.6, 0.25, 0.15])
    min_warmup_tokens: int = 50_000
    stage3_rope_theta: float = 640_000.0  # stage 3 raises the RoPE base (10k → 640k, report §2.3)
    weight_decay: float = 0.1
    betas: list = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0
    log_every: int = 10                   # optimiser steps between metric lines
    checkpoint_every: int = 50            # optimiser steps between checkpoints
    heldout_sequences: int = 16           # per domain, for the held-out loss at each stage's end
    compile: bool = False                 # torch.compile the model (GPU profiles)


@dataclass
class ProblemsSection:
    """Sizes of the verifiable problem suites (notebook 07, `mimo_lite/rl/problems.py`)."""
    math_per_tier: int = 200       # math problems per difficulty tier (4 tiers)
    code_families: int = 9         # the first families of each tier of tasks/templates/code.yaml
    #                                (tier 1: 5 families, tier 2: 9)
    code_variants: list = field(default_factory=lambda: [20, 3])
    #                                problems per family of code tier 1, 2 (a tier-1 family has one
    #                                problem per constant: 28 to 61 of them; 0 leaves a tier out)
    typical_tests: int = 10        # random typical-case tests per code problem, besides edge and large
    heldout_fraction: float = 0.2  # share of each tier (and of the code problems) held out


@dataclass
class InferenceSection:
    """Notebook 05: KV cache, continuous batching, MTP speculative decoding."""
    num_prompts: int = 64           # held-out reasoning prompts behind the acceptance figures
    max_new_tokens: int = 64        # room for a whole answer with its chain of thought
    batch_size: int = 32            # rows decoded together in the batched measurements
    timing_tokens: int = 512        # tokens timed with and without the KV cache
    mtp_layers: int = 3             # MTP layers at inference: 1 trained + 2 copies (report §2.2)
    mtp_finetune_steps: int = 120   # steps that fine-tune the copies (main model, layer 1 frozen)
    mtp_finetune_batch: int = 32    # sequences per fine-tuning step
    mtp_finetune_lr: float = 1e-3


@dataclass
class SFTSection:
    """Notebook 06: long-CoT SFT data and training (report §3.1, facts file §4.1)."""
    queries_per_tier: list = field(default_factory=lambda: [200, 1500, 300, 150])
    #                               math queries per tier for the teacher (code: every problem);
    #                               weighted to the tiers a small model can learn
    max_candidates: int = 12        # teacher replies per query before cleaning, drawn 1..this
    incomplete_rate: float = 0.1    # share of replies the teacher cuts off mid-thought
    max_per_query: int = 8          # the report's cap on responses per query
    seq_len: int = 512              # packed row length (the report packs to 32,768)
    batch_tokens: int = 4096        # tokens per optimiser step (the report: 128 × 32,768)
    micro_batch: int = 8            # rows per forward pass
    lr: float = 5.6e-4              # constant; the report's 3e-5 is 0.28× its pre-training peak
    total_tokens: int = 400_000     # assistant tokens for the full fine-tune
    light_tokens: int = 100_000     # assistant tokens for the format-only (light) SFT
    lora_tokens: int = 400_000      # assistant tokens for the LoRA run
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_lr: float = 3e-3           # adapters start at zero and take a larger step
    mtp_weight: float = 0.1         # the MTP layer keeps training (λ of pre-training's end)
    weight_decay: float = 0.0
    betas: list = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0
    log_every: int = 5
    checkpoint_every: int = 50
    eval_max_new_tokens: int = 128  # reply budget when measuring held-out pass@1


@dataclass
class RLSection:
    """GRPO (notebook 08, `mimo_lite/rl/`). The paper (report §3.3.3): batch 512, mini-batch 32,
    16 updates per step, LR 1e-6, temperature 1.0, top-p 1.0; ε and G not stated (facts §4.3, §4.6)."""
    steps: int = 60                  # GRPO steps of the main runs (RL and RL-Zero)
    ablation_steps: int = 30         # GRPO steps of each ablation run
    batch_prompts: int = 8           # groups with signal per step (after dynamic sampling)
    group_size: int = 8              # G answers per prompt
    oversample: float = 2.0          # prompts drawn per missing group, before their pass rates are known
    max_rounds: int = 4              # rollout rounds per step before training on what was found
    updates_per_step: int = 2        # mini-batch updates per step (the paper: 512 / 32 = 16)
    lr: float = 2.0e-5
    eps_low: float = 0.2             # DAPO's values; MiMo states none
    eps_high: float = 0.28
    grad_clip: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 96
    rollout_batch: int = 64          # sequences the generator decodes together
    dynamic_sampling: bool = True
    easy_filter: bool = True
    easy_alpha: float = 0.1          # probability of drawing from the easy data pool (report §3.3.2)
    token_level: bool = True         # False: per-answer mean (ablation)
    kl_coef: float = 0.0             # MiMo: no KL (ablation switch)
    code_scheme: str = "soft"        # code reward: vanilla, strict or soft (report §3.3.1)
    math_tiers: list = field(default_factory=lambda: [1, 2, 3, 4])   # math tiers trained on
    code: bool = True                # train on the code problems too
    zero: dict = field(default_factory=dict)    # overrides for RL-Zero (from the base model)
    eval_every: int = 20             # steps between held-out pass@1 measurements
    eval_samples: int = 4            # sampled answers per held-out problem
    eval_temperature: float = 0.6    # the paper evaluates at 0.6, top-p 0.95
    eval_max_new_tokens: int = 96
    checkpoint_every: int = 20
    reward_workers: int = 1          # processes of the reward executor

    def __post_init__(self):
        for name in ("steps", "ablation_steps", "batch_prompts", "group_size", "max_rounds",
                     "updates_per_step", "max_new_tokens", "rollout_batch", "eval_every",
                     "eval_samples", "eval_max_new_tokens", "checkpoint_every", "reward_workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"rl.{name} must be a positive whole number, got {value!r}.")
        if self.group_size < 2:
            raise ValueError(f"rl.group_size must be ≥ 2: advantages compare answers within a "
                             f"group, got {self.group_size}.")
        if self.oversample < 1:
            raise ValueError(f"rl.oversample must be ≥ 1 (prompts drawn per missing group), got "
                             f"{self.oversample!r}.")
        if self.code_scheme not in ("vanilla", "strict", "soft"):
            raise ValueError(f"rl.code_scheme must be vanilla, strict or soft, got "
                             f"{self.code_scheme!r}.")
        if not set(self.math_tiers) <= {1, 2, 3, 4}:
            raise ValueError(f"rl.math_tiers must be chosen from the tiers 1-4, got {self.math_tiers!r}.")
        unknown = set(self.zero) - {f.name for f in dataclasses.fields(self)} - {"zero"}
        if unknown or "zero" in self.zero:
            raise ValueError(f"rl.zero overrides unknown key(s) {sorted(unknown) or ['zero']}: use "
                             f"keys of the rl section.")

    def with_overrides(self, **overrides) -> "RLSection":
        """A copy with some fields replaced (checked like the profile)."""
        return _build(RLSection, {**dataclasses.asdict(self), **overrides}, "rl")


@dataclass
class Profile:
    name: str
    seed: int = 0
    device: str = "cpu"          # "cpu", "cuda", or "auto" (cuda when available)
    dtype: str = "float32"       # training/inference dtype on that device ("bfloat16" on GPU)
    threads: int = 0             # CPU threads for torch; 0 keeps torch's default (one per core)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    pretrain: PretrainSection = field(default_factory=PretrainSection)
    problems: ProblemsSection = field(default_factory=ProblemsSection)
    inference: InferenceSection = field(default_factory=InferenceSection)
    sft: SFTSection = field(default_factory=SFTSection)
    rl: RLSection = field(default_factory=RLSection)

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


def load_profile(name_or_path: str | Path) -> Profile:
    """`load_profile("toy")` or `load_profile("my_profile.yaml")`."""
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
    return _build(Profile, raw, str(path))


def _build(cls, raw: dict, where: str):
    """Dataclass from a dict, refusing unknown keys so that a typo never passes silently."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    types = typing.get_type_hints(cls)
    unknown = set(raw) - set(fields)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)} in section "
                         f"{cls.__name__}; allowed keys are {sorted(fields)}.")
    kwargs = {}
    for key, value in raw.items():
        section = types[key]
        if dataclasses.is_dataclass(section):   # a nested section: build it the same way
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{where}: section {key!r} must be a mapping, got {value!r}.")
            value = _build(section, value or {}, f"{where}:{key}")
        kwargs[key] = value
    return cls(**kwargs)


def as_profile(profile: str | Path | Profile) -> Profile:
    """A loaded profile, given one or its name/path (library entry points accept all three)."""
    return profile if isinstance(profile, Profile) else load_profile(profile)
