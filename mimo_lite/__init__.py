"""mimo-lite: Xiaomi's MiMo-7B recipe, rebuilt at toy scale, one notebook per stage."""

from transformers import AutoConfig, AutoModelForCausalLM

from .config import PRESETS, MiMoConfig, preset
from .model import MiMoForCausalLM, MiMoModel

AutoConfig.register("mimo", MiMoConfig, exist_ok=True)
AutoModelForCausalLM.register(MiMoConfig, MiMoForCausalLM, exist_ok=True)

__all__ = ["MiMoConfig", "MiMoForCausalLM", "MiMoModel", "PRESETS", "preset"]
