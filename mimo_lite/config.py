"""MiMoConfig: the released MiMo-7B configuration, plus named sizes for the kit's profiles.

MiMo-7B is "similar to Llama and Qwen" (report §2.2): its config is Qwen2's with one extra
field, `num_nextn_predict_layers`, the number of multi-token-prediction (MTP) layers. Keeping the
official field names means the released `config.json` loads unchanged, and the main stack can be
checked against transformers' own `Qwen2ForCausalLM`.

transformers does not ship the model type "mimo": importing this module registers the config
under it with AutoConfig, and importing `model.py` the model with AutoModelForCausalLM (both
happen on `from mimo_lite import MiMoForCausalLM`, and in every module that builds, trains or
runs one). A checkpoint folder also names its classes in `auto_map`, as the released MiMo-7B
does, so a process that never imports the kit (the lm-evaluation-harness CLI) loads it with
`trust_remote_code=True`.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, Qwen2Config

# Written beside every saved config.json; `auto_map` names its classes. It imports them from the
# installed kit, so a checkpoint folder carries no second copy of the model.
REMOTE_CODE_FILE = "modeling_mimo.py"
REMOTE_CODE = '''"""The mimo-lite kit's MiMo classes, for `from_pretrained(folder, trust_remote_code=True)`.

config.json's `auto_map` names them; they come from the installed kit (`pip install -e <kit>`).
"""

from mimo_lite import MiMoConfig, MiMoForCausalLM  # noqa: F401
'''
AUTO_MAP = {"AutoConfig": "modeling_mimo.MiMoConfig",
            "AutoModelForCausalLM": "modeling_mimo.MiMoForCausalLM"}


class MiMoConfig(Qwen2Config):
    """Qwen2's fields plus `num_nextn_predict_layers`; `model_type="mimo"`.

    Kit-only fields (all optional, ignored by other loaders):
      mtp_loss_weight: λ in L = L_main + λ·L_mtp (the report uses 0.3, then 0.1; §2.3).
    """

    model_type = "mimo"

    num_nextn_predict_layers: int = 0
    attention_bias: bool = True
    head_dim: int | None = None
    mtp_loss_weight: float = 0.3

    def __post_init__(self, **kwargs):
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        super().__post_init__(**kwargs)
        validate(self)

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """config.json with `auto_map`, and `modeling_mimo.py` beside it (see the module docstring).

        `model.save_pretrained` and `export_hf` both come here, so every kit checkpoint loads in a
        fresh process: `AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`.
        """
        self.auto_map = dict(AUTO_MAP)
        super().save_pretrained(save_directory, **kwargs)
        (Path(save_directory) / REMOTE_CODE_FILE).write_text(REMOTE_CODE)

    @property
    def rope_theta(self) -> float:
        """RoPE base (10k in stages 1–2, 640k from stage 3 on; report §2.3)."""
        params = self.__dict__.get("rope_parameters") or {}
        if "rope_theta" not in params:  # not yet converted from the flat field during __init__
            raise AttributeError("rope_theta")
        return float(params["rope_theta"])

    @rope_theta.setter
    def rope_theta(self, value: float) -> None:
        # Kept in `rope_parameters`, where transformers reads it; vLLM's config loader assigns it.
        self.rope_parameters = {**(self.__dict__.get("rope_parameters") or {}), "rope_theta": value}


AutoConfig.register("mimo", MiMoConfig, exist_ok=True)


def validate(config: MiMoConfig) -> None:
    """Stop a config that cannot build a model, with one sentence saying what to change."""
    c = config
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                 "num_attention_heads", "num_key_value_heads", "head_dim"):
        value = getattr(c, name)
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"MiMoConfig.{name} must be a positive integer, got {value!r}.")
    if c.num_attention_heads % c.num_key_value_heads:
        raise ValueError(
            f"num_attention_heads={c.num_attention_heads} is not divisible by "
            f"num_key_value_heads={c.num_key_value_heads}: in GQA each KV head serves a whole "
            f"group of query heads, so pick a num_key_value_heads that divides it.")
    if c.head_dim % 2:
        raise ValueError(f"head_dim={c.head_dim} is odd, but RoPE rotates pairs of channels: "
                         f"use an even head_dim.")
    if c.head_dim * c.num_attention_heads != c.hidden_size:
        raise ValueError(
            f"head_dim={c.head_dim} × num_attention_heads={c.num_attention_heads} = "
            f"{c.head_dim * c.num_attention_heads} does not equal hidden_size={c.hidden_size}: "
            f"set head_dim to hidden_size // num_attention_heads = "
            f"{c.hidden_size // c.num_attention_heads} or change the head count.")
    if not isinstance(c.num_nextn_predict_layers, int) or c.num_nextn_predict_layers < 0:
        raise ValueError(f"num_nextn_predict_layers must be 0 or more, got "
                         f"{c.num_nextn_predict_layers!r}.")
    if c.mtp_loss_weight < 0:
        raise ValueError(f"mtp_loss_weight must be ≥ 0, got {c.mtp_loss_weight}.")
    if c.rope_theta <= 0:
        raise ValueError(f"rope_theta must be positive, got {c.rope_theta}.")


# Named sizes. `mimo_7b` is the released MiMo-7B config (facts file §1.1); the others size the
# kit's profiles: `smoke` for CI, `toy` for a 2-core CPU (~2M parameters learn chain-of-thought
# arithmetic in minutes there), `gpu` for one GPU (~125M parameters).
PRESETS: dict[str, dict] = {
    "mimo_7b": dict(
        vocab_size=151680, hidden_size=4096, intermediate_size=11008, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128,
        max_position_embeddings=32768, rope_theta=640000, rms_norm_eps=1e-5,
        tie_word_embeddings=False, attention_bias=True, num_nextn_predict_layers=1,
        bos_token_id=151643, eos_token_id=151645, max_window_layers=36, sliding_window=32768,
        use_sliding_window=False,
    ),
    "gpu": dict(
        vocab_size=8192, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
        num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=4096,
        rope_theta=10000, rms_norm_eps=1e-5, num_nextn_predict_layers=1,
    ),
    "toy": dict(
        vocab_size=2048, hidden_size=192, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=1024,
        rope_theta=10000, rms_norm_eps=1e-5, num_nextn_predict_layers=1,
    ),
    "smoke": dict(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rope_theta=10000, rms_norm_eps=1e-5, num_nextn_predict_layers=1,
    ),
}


def preset(name: str, **overrides) -> MiMoConfig:
    """A named config, with any field overridden: `preset("toy", vocab_size=4096)`."""
    if name not in PRESETS:
        raise ValueError(f"Unknown model preset {name!r}; choose one of {sorted(PRESETS)}.")
    return MiMoConfig(**{**PRESETS[name], **overrides})
