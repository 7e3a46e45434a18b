"""The `vllm.general_plugins` entry point: declared, importable without vLLM, and mapping the kit's
checkpoint architectures to vLLM's MiMo classes."""

import importlib
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest

from mimo_lite import MiMoConfig, MiMoForCausalLM, preset
from mimo_lite.rl import vllm_plugin

ROOT = Path(__file__).resolve().parents[1]


def test_the_entry_point_is_declared_and_resolves_to_register():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [(name, target)] = project["entry-points"]["vllm.general_plugins"].items()
    module, _, function = target.partition(":")
    assert name == "mimo_lite" and getattr(importlib.import_module(module), function) is vllm_plugin.register


def test_importing_the_kit_imports_neither_vllm_nor_ray():
    script = ("import sys, mimo_lite, mimo_lite.rl.vllm_plugin, mimo_lite.rl.ray_rewards\n"
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'vllm', 'ray'}))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"


def test_the_plugin_module_alone_registers_the_model_type():
    """What a vLLM process does: import the entry point's module, then read a "mimo" config."""
    script = ("import mimo_lite.rl.vllm_plugin\n"
              "from transformers import AutoConfig\n"
              "print(type(AutoConfig.for_model('mimo')).__name__)")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "MiMoConfig"


def test_without_vllm_register_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)         # `import vllm` now fails, as when absent
    with pytest.raises(ImportError, match="make scaled-env"):
        vllm_plugin.register()


class RecordingRegistry:
    def __init__(self):
        self.models = {}

    def register_model(self, architecture, model):
        self.models[architecture] = model


def test_register_maps_the_checkpoint_architectures_to_vllm_mimo(monkeypatch):
    registry = RecordingRegistry()
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(ModelRegistry=registry))
    vllm_plugin.register()
    vllm_plugin.register()                                  # vLLM may call it again in one process
    assert registry.models == {"MiMoForCausalLM": "vllm.model_executor.models.mimo:MiMoForCausalLM",
                               "MiMoMTPModel": "vllm.model_executor.models.mimo_mtp:MiMoMTP"}
    assert MiMoForCausalLM.__name__ in registry.models      # what export_hf writes to `architectures`
    from transformers import AutoConfig
    assert type(AutoConfig.for_model("mimo")) is MiMoConfig  # vLLM reads the config without remote code


def test_rope_theta_can_be_assigned_as_vllm_s_config_loader_does():
    config = preset("mimo_7b")
    config.rope_theta = config.rope_theta          # vllm.transformers_utils.config.patch_rope_parameters
    assert config.rope_theta == 640000.0 and config.rope_parameters["rope_theta"] == 640000.0
    config.rope_theta = 10000.0
    assert config.rope_parameters["rope_theta"] == 10000.0


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                    reason="vLLM is not installed (make scaled-env builds the environment that has it)")
def test_the_installed_vllm_reads_a_saved_checkpoint_through_the_plugin(tmp_path):
    from vllm import ModelRegistry
    from vllm.transformers_utils.config import get_config

    MiMoForCausalLM(preset("smoke", rope_theta=640000)).save_pretrained(tmp_path)
    vllm_plugin.register()
    assert set(vllm_plugin.VLLM_MODELS) <= set(ModelRegistry.get_supported_archs())
    for target in vllm_plugin.VLLM_MODELS.values():
        assert importlib.util.find_spec(target.partition(":")[0]) is not None, target
    config = get_config(str(tmp_path), trust_remote_code=False)
    assert type(config) is MiMoConfig and config.architectures == ["MiMoForCausalLM"]
    assert config.rope_theta == 640000.0
