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
class ProblemsSection:
    """Sizes of the verifiable problem suites (notebook 07, `mimo_lite/rl/problems.py`)."""
    math_per_tier: int = 200       # math problems per difficulty tier (4 tiers)
    code_families: int = 9         # the first families of data/problems/code.yaml (9 in all)
    code_variants: int = 3         # problems per code family, its first variants
    typical_tests: int = 10        # random typical-case tests per code problem, besides edge and large
    heldout_fraction: float = 0.2  # share of each tier (and of the code problems) held out


@dataclass
class Profile:
    name: str
    seed: int = 0
    device: str = "cpu"          # "cpu", "cuda", or "auto" (cuda when available)
    dtype: str = "float32"       # training/inference dtype on that device ("bfloat16" on GPU)
    model: ModelSection = field(default_factory=ModelSection)
    problems: ProblemsSection = field(default_factory=ProblemsSection)

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
