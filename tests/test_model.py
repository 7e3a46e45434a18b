"""The model contract of DESIGN.md: Qwen2 parity, KV cache, the MiMo-7B checkpoint layout, MTP."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, DynamicCache

from mimo_lite.config import MiMoConfig, preset
from mimo_lite.model import MiMoForCausalLM, qwen2_twin   # registers the Auto classes

HERE = Path(__file__).parent
def random_model(seed=0, **overrides) -> MiMoForCausalLM:
    torch.manual_seed(seed)
    model = MiMoForCausalLM(preset("smoke", **overrides)).eval()
    with torch.no_grad():   # non-trivial biases and norm weights, so that every term is tested
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


SHAPES = [
    dict(),                                                                     # 4 heads, 2 KV heads
    dict(hidden_size=96, num_attention_heads=3, num_key_value_heads=1),        # odd heads, MQA
    dict(hidden_size=80, num_attention_heads=5, num_key_value_heads=5),        # odd heads, MHA
    dict(hidden_size=96, num_attention_heads=6, num_key_value_heads=3, num_hidden_layers=3,
         rope_theta=640000),                                                     # MiMo's stage-3 base
    dict(hidden_size=64, num_attention_heads=2, num_key_value_heads=2, head_dim=32,
         intermediate_size=96),
]


@pytest.mark.parametrize("overrides", SHAPES, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()) or "default")
def test_main_stack_matches_transformers_qwen2(overrides):
    model = random_model(**overrides)
    twin = qwen2_twin(model)
    ids = torch.randint(0, model.config.vocab_size, (3, 21))
    with torch.no_grad():
        ours, theirs = model(ids).logits, twin(ids).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-5)


def test_left_padded_batch_matches_transformers_qwen2():
    model = random_model()
    twin = qwen2_twin(model)
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    with torch.no_grad():
        ours, theirs = model(ids, attention_mask=mask).logits, twin(ids, attention_mask=mask).logits
    torch.testing.assert_close(ours[mask.bool()], theirs[mask.bool()], rtol=0, atol=2e-5)


def test_kv_cache_decoding_equals_full_forward():
    model = random_model(hidden_size=96, num_attention_heads=6, num_key_value_heads=2)
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    with torch.no_grad():
        full = model(ids).logits
        cache = DynamicCache(config=model.config)
        steps = [model(ids[:, :7], cache=cache).logits]                 # prefill 7 tokens
        steps.append(model(ids[:, 7:10], cache=cache).logits)            # a 3-token chunk
        steps += [model(ids[:, t:t + 1], cache=cache).logits for t in range(10, 16)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=2e-5)


def test_generate_matches_transformers_greedy():
    model = random_model()
    twin = qwen2_twin(model)
    ids = torch.randint(0, model.config.vocab_size, (2, 6))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    kwargs = dict(attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(ids, **kwargs), twin.generate(ids, **kwargs))


def official_state_dict_shapes() -> dict[str, tuple]:
    """The released MiMo-7B weight map (facts file §2.1), written out from its documented pattern."""
    D, F, V, Dkv = 4096, 11008, 151680, 1024
    block = {
        "input_layernorm.weight": (D,), "post_attention_layernorm.weight": (D,),
        "self_attn.q_proj.weight": (D, D), "self_attn.q_proj.bias": (D,),
        "self_attn.k_proj.weight": (Dkv, D), "self_attn.k_proj.bias": (Dkv,),
        "self_attn.v_proj.weight": (Dkv, D), "self_attn.v_proj.bias": (Dkv,),
        "self_attn.o_proj.weight": (D, D),
        "mlp.gate_proj.weight": (F, D), "mlp.up_proj.weight": (F, D), "mlp.down_proj.weight": (D, F),
    }
    keys = {"model.embed_tokens.weight": (V, D), "lm_head.weight": (V, D), "model.norm.weight": (D,)}
    for i in range(36):
        keys.update({f"model.layers.{i}.{k}": s for k, s in block.items()})
    mtp = {**block, "token_layernorm.weight": (D,), "hidden_layernorm.weight": (D,),
           "input_proj.weight": (D, 2 * D), "final_layernorm.weight": (D,)}
    keys.update({f"model.mtp_layers.0.{k}": s for k, s in mtp.items()})
    return keys


def test_mimo_7b_preset_has_the_official_layout_and_count():
    with torch.device("meta"):
        model = MiMoForCausalLM(preset("mimo_7b"))
        main_only = MiMoForCausalLM(preset("mimo_7b", num_nextn_predict_layers=0))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == official_state_dict_shapes()
    assert sum(p.numel() for p in model.parameters()) == 7_833_409_536
    assert sum(p.numel() for p in main_only.parameters()) == 7_622_619_136


def test_released_config_json_loads_unchanged():
    raw = json.loads((HERE / "data" / "mimo_7b_config.json").read_text())
    config = MiMoConfig.from_dict(raw)
    reference = preset("mimo_7b")
    for field in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                  "num_attention_heads", "num_key_value_heads", "head_dim", "rope_theta",
                  "num_nextn_predict_layers", "attention_bias", "tie_word_embeddings", "rms_norm_eps"):
        assert getattr(config, field) == getattr(reference, field), field
    assert config.rope_theta == 640000


def test_save_and_load_in_a_fresh_process(tmp_path):
    model = random_model()
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").exists()
    ids = torch.randint(0, model.config.vocab_size, (2, 9))
    torch.save(ids, tmp_path / "ids.pt")
    with torch.no_grad():
        out = model(ids, return_mtp=True)
    script = f"""
import torch, mimo_lite.model   # registers the Auto classes
from transformers import AutoConfig, AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained({str(tmp_path / 'ckpt')!r}).eval()
assert type(model).__name__ == "MiMoForCausalLM"
ids = torch.load({str(tmp_path / 'ids.pt')!r})
with torch.no_grad():
    out = model(ids, return_mtp=True)
torch.save((out.logits, out.mtp_logits[0]), {str(tmp_path / 'out.pt')!r})
print(model.generate(ids[:, :4], max_new_tokens=5, do_sample=False).shape)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "torch.Size([2, 9])" in run.stdout
    logits, mtp_logits = torch.load(tmp_path / "out.pt")
    assert torch.equal(logits, out.logits) and torch.equal(mtp_logits, out.mtp_logits[0])
    assert AutoConfig.from_pretrained(tmp_path / "ckpt").model_type == "mimo"


def test_mtp_loss_trains_the_mtp_layer():
    model = random_model().train()
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    out = model(ids, labels=ids, mtp_loss_weight=0.3)
    torch.testing.assert_close(out.loss, out.main_loss + 0.3 * out.mtp_loss)
    out.loss.backward()
    mtp_grads = [p.grad for n, p in model.named_parameters() if "mtp_layers" in n]
    assert mtp_grads and all(g is not None and g.abs().sum() > 0 for g in mtp_grads)

    model.zero_grad()
    out = model(ids, labels=ids, mtp_loss_weight=0.0)
    assert torch.equal(out.loss, out.main_loss)


def test_mtp_predicts_two_tokens_ahead():
    """MTP logits at t depend on tokens ≤ t+1 only, and its CE is taken against token t+2."""
    model = random_model()
    ids = torch.randint(0, model.config.vocab_size, (1, 12))
    changed = ids.clone()
    changed[0, 8] = (ids[0, 8] + 1) % model.config.vocab_size
    with torch.no_grad():
        a = model(ids, return_mtp=True).mtp_logits[0]
        b = model(changed, return_mtp=True).mtp_logits[0]
    assert a.shape[1] == ids.shape[1] - 1
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=0)   # t+1 < 8: unaffected
    assert not torch.allclose(a[:, 7], b[:, 7])                       # t = 7 reads x_8


def test_training_forward_compiles_without_graph_breaks():
    model = random_model().train()
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(ids, labels=ids).loss, model(ids, labels=ids).loss)


def test_forward_compiles_with_dynamic_sequence_length():
    # once torch.compile has seen two lengths it makes T symbolic; `is_causal=T > 1` then hands
    # SDPA a SymBool and the whole graph fails (seen on a GPU in a process that compiled twice)
    model = random_model().train()
    compiled = torch.compile(model, backend="eager", fullgraph=True, dynamic=True)
    for T in (16, 24):
        ids = torch.randint(0, model.config.vocab_size, (2, T))
        torch.testing.assert_close(compiled(ids, labels=ids).loss, model(ids, labels=ids).loss)


@pytest.mark.parametrize("overrides, message", [
    (dict(num_attention_heads=6, num_key_value_heads=4, hidden_size=96), "not divisible"),
    (dict(head_dim=24), "does not equal hidden_size"),
    (dict(hidden_size=0), "positive integer"),
    (dict(num_nextn_predict_layers=-1), "0 or more"),
])
def test_bad_configs_fail_with_a_clear_message(overrides, message):
    with pytest.raises(ValueError, match=message):
        preset("smoke", **overrides)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        preset("mimo_70b")
