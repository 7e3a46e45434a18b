"""mimo-lite: Xiaomi's MiMo-7B recipe, rebuilt at toy scale, one notebook per stage.

`from mimo_lite import MiMoForCausalLM, preset` imports the model (torch and transformers) when
it is first asked for, not with the package: a process that only scores answers, a reward worker
(`rl/executor.py`, `rl/ray_rewards.py`), imports the kit's verifier and sandbox in under a second
and never loads torch. Importing the model registers the type "mimo" with transformers' Auto
classes (`config.py`, `model.py`).
"""

import importlib

_EXPORTS = {"MiMoConfig": "config", "PRESETS": "config", "preset": "config",
            "MiMoModel": "model", "MiMoForCausalLM": "model"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
