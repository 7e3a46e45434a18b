"""The kit's model type in every vLLM process: a `vllm.general_plugins` entry point.

vLLM runs its engine and GPU workers in processes of its own, and calls every function declared
under the entry-point group `vllm.general_plugins` in each of them (pyproject.toml declares
`mimo_lite = "mimo_lite.rl.vllm_plugin:register"`). Two things must be known there:
  - the config: the kit's checkpoints say `model_type: "mimo"`, which transformers does not ship;
    importing this module imports the kit's `config.py`, which registers `MiMoConfig` under that
    name with transformers' AutoConfig, so vLLM reads the exported `config.json` without
    `trust_remote_code` (no `configuration_mimo.py` is needed beside it);
  - the architecture: `architectures: ["MiMoForCausalLM"]` (written by `export_hf`) names vLLM's
    own MiMo model, a Qwen2 stack that skips the `model.mtp_layers.*` weights, and
    `MiMoMTPModel` its MTP draft for speculative decoding. Both ship with vLLM (0.33.0, pinned in
    scaled/constraints.txt); they are registered here by name so that the mapping is explicit and
    does not depend on vLLM's defaults.
Nothing here imports vLLM until vLLM itself calls `register`.
"""

from __future__ import annotations

from .. import config  # noqa: F401  (registers model_type "mimo" with AutoConfig)

# checkpoint architecture -> vLLM's class, "module:class" (imported lazily by vLLM, after CUDA is set up)
VLLM_MODELS = {
    "MiMoForCausalLM": "vllm.model_executor.models.mimo:MiMoForCausalLM",   # MiMoModel(Qwen2Model)
    "MiMoMTPModel": "vllm.model_executor.models.mimo_mtp:MiMoMTP",          # the MTP draft
}


def register() -> None:
    """Called by vLLM in each of its processes; safe to call more than once."""
    try:
        from vllm import ModelRegistry
    except ImportError as err:
        raise ImportError("mimo_lite.rl.vllm_plugin.register is vLLM's plugin hook and needs vLLM: "
                          "build the scaled environment with `make scaled-env` (vLLM 0.33.0, "
                          "scaled/constraints.txt); the toy path never needs it") from err
    for architecture, model in VLLM_MODELS.items():
        ModelRegistry.register_model(architecture, model)
