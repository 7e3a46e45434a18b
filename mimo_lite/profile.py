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


@dataclass
class InferenceSection:
    """Notebook 05: KV cache, continuous batching, MTP speculative decoding."""
    num_prompts: int = 64           # held-out reasoning prompts behind the acceptance figures
    max_new_tokens: int = 64        # room for a whole answer with its chain of thought
    batch_size: int = 32            # rows decoded together in the batched measurements
    timing_tokens: int = 512        # tokens timed with and without the KV cache
    mtp_layers: int = 3             # MTP layers at inference: 1 trained + 2 copies (report §2.2)
    mtp_finetune_steps: int = 200   # steps that fine-tune the copies (main model, layer 1 frozen)
    mtp_finetune_batch: int = 32    # sequences per fine-tuning step
    mtp_finetune_lr: float = 1e-3


@dataclass
class Profile:
    name: str
    seed: int = 0
    device: str = "cpu"          # "cpu", "cuda", or "auto" (cuda when available)
    dtype: str = "float32"       # training/inference dtype on that device ("bfloat16" on GPU)
    model: ModelSection = field(default_factory=ModelSection)
    inference: InferenceSection = field(default_factory=InferenceSection)

    @property
    def torch_device(self):
        import torch
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

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
