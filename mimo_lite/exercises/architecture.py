"""Notebook 03's implementation exercises: RMSNorm, the RoPE rotation, SwiGLU and the MTP input.

Each checker compares the learner's function with `mimo_lite/model.py` on hidden inputs.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from ..config import preset
from ..model import MLP, MiMoForCausalLM, RMSNorm, apply_rope, rope_cos_sin
from .checking import Case, Mismatch, compare_tensors, run_cases


# ---- RMSNorm ----------------------------------------------------------------------------------

def _library_rms_norm(x, weight, eps):
    norm = RMSNorm(x.shape[-1], eps).to(x.dtype)
    with torch.no_grad():
        norm.weight.copy_(weight)
        return norm(x)


def _rms_norm_mistakes(x, weight, eps) -> dict:
    x32, w = x.float(), weight.float()
    ms = x32.pow(2).mean(-1, keepdim=True)
    out = {
        "eps added outside the square root, x / (sqrt(mean(x²)) + eps)": x32 / (ms.sqrt() + eps) * w,
        "eps left out, x / sqrt(mean(x²))": x32 / ms.sqrt() * w,
        "the mean subtracted first (that is LayerNorm; RMSNorm does not centre)":
            (x32 - x32.mean(-1, keepdim=True)) * torch.rsqrt(x32.var(-1, unbiased=False, keepdim=True) + eps) * w,
        "the learnt weight not applied": x32 * torch.rsqrt(ms + eps),
        "the sum of squares used instead of the mean": x32 * torch.rsqrt(x32.pow(2).sum(-1, keepdim=True) + eps) * w,
        "multiplied by the RMS instead of divided by it": x32 * torch.sqrt(ms + eps) * w,
    }
    if x.dim() > 1:
        out["the mean of squares taken over the wrong axis (dim 0 instead of the last, the features)"] = \
            x32 * torch.rsqrt(x32.pow(2).mean(0, keepdim=True) + eps) * w
    return {k: v.to(x.dtype) for k, v in out.items()}


def check_rmsnorm(fn):
    """Check `rms_norm(x, weight, eps) -> Tensor` against `mimo_lite.model.RMSNorm`.

    x: (..., D) any float dtype; weight: (D,) same dtype; eps: float. Returns
    y = x / sqrt(mean(x², last axis) + eps) · weight, with the dtype of x.
    """
    g = torch.Generator().manual_seed(3)
    cases = []
    for name, shape, scale, eps, dtype in [
            ("a (2, 5, 16) float32 batch, eps = 1e-6", (2, 5, 16), 3.0, 1e-6, torch.float32),
            ("tiny activations (|x| ≈ 1e-3) with eps = 1e-4, where eps matters", (4, 8), 1e-3, 1e-4, torch.float32),
            ("a (3, 8) bfloat16 batch", (3, 8), 2.0, 1e-5, torch.bfloat16),
            ("one vector of 12 features", (12,), 1.0, 1e-6, torch.float32)]:
        x = (torch.randn(shape, generator=g) * scale + 0.5 * scale).to(dtype)
        w = (torch.rand(shape[-1], generator=g) + 0.5).to(dtype)
        cases.append(Case(name, (x, w, eps), _library_rms_norm(x, w, eps), _rms_norm_mistakes(x, w, eps)))

    def compare(got, expected):
        tol = 2e-2 if expected.dtype == torch.bfloat16 else 1e-5
        compare_tensors(got, expected, atol=tol, rtol=tol)

    return run_cases("RMSNorm", fn, cases, compare, "mimo_lite.model.RMSNorm",
                     "Recall y = x / sqrt(mean(x²) + eps) · w, the mean over the last axis (the "
                     "features of one token), computed in float32.")


# ---- RoPE -------------------------------------------------------------------------------------

def _rotation(x, positions, inv_freq, layout="halves", sign=1.0):
    """Rotate x (B, h, T, d) by positions·inv_freq: the likely mistakes vary layout, sign, frequencies."""
    angles = positions.float()[..., None] * inv_freq                        # (B, T, d/2)
    cos, sin = angles.cos()[:, None], sign * angles.sin()[:, None]          # (B, 1, T, d/2)
    if layout == "halves":
        a, b = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]                                       # GPT-J: pairs (2i, 2i+1)
    return torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(-2)


def check_rope(fn):
    """Check `rope(x, positions, theta) -> Tensor` against `mimo_lite.model.apply_rope` and `rope_cos_sin`.

    x: (B, h, T, d) queries or keys; positions: (B, T) integer positions; theta: the RoPE base.
    Channel i (i < d/2) pairs with channel i + d/2 ("rotate half") and turns by the angle
    position · theta^(−2i/d). Returns a tensor shaped like x.
    """
    g = torch.Generator().manual_seed(4)
    cases = []
    for name, (B, h, T, d), start, theta in [
            ("x of shape (1, 2, 6, 8) at positions 0..5, θ = 10,000", (1, 2, 6, 8), [0], 10_000.0),
            ("two rows decoding after a cache, at positions 37..41 and 5..9", (2, 3, 5, 16), [37, 5], 10_000.0),
            ("head_dim 32 with MiMo's stage-3 base θ = 640,000", (1, 1, 7, 32), [1000], 640_000.0)]:
        x = torch.randn(B, h, T, d, generator=g)
        positions = torch.tensor(start)[:, None] + torch.arange(T)                  # (B, T)
        expected = apply_rope(x, *rope_cos_sin(positions, d, theta, x.dtype))
        inv = theta ** (-torch.arange(0, d, 2).float() / d)
        mistakes = {
            "channels paired as neighbours (2i, 2i+1), the GPT-J layout; MiMo/Qwen pair i with i + d/2":
                _rotation(x, positions, inv, layout="pairs"),
            "the rotation turns the wrong way (the sign of sin flipped)": _rotation(x, positions, inv, sign=-1.0),
            "the positions ignored: 0..T−1 used instead of the given positions":
                _rotation(x, torch.arange(T).expand(B, T), inv),
            "frequencies theta^(−i/d) instead of theta^(−2i/d)":
                _rotation(x, positions, theta ** (-torch.arange(0, d // 2).float() / d)),
            "frequencies theta^(+2i/d): the exponent's sign flipped": _rotation(x, positions, 1 / inv),
        }
        cases.append(Case(name, (x, positions, theta), expected, mistakes))
    return run_cases("RoPE rotation", fn, cases,
                     lambda got, expected: compare_tensors(got, expected, atol=1e-4, rtol=1e-4),
                     "mimo_lite.model.apply_rope(x, *rope_cos_sin(positions, d, theta))",
                     "Recall: angle = position · theta^(−2i/d) for pair i; out = x·cos + "
                     "rotate_half(x)·sin with rotate_half(x) = cat(−x[d/2:], x[:d/2]).")


# ---- SwiGLU -----------------------------------------------------------------------------------

def check_swiglu(fn):
    """Check `swiglu(x, w_gate, w_up, w_down) -> Tensor` against `mimo_lite.model.MLP`.

    x: (..., D); w_gate, w_up: (F, D); w_down: (D, F), laid out as nn.Linear weights (out, in),
    no biases. Returns down(silu(gate(x)) ⊙ up(x)), shaped like x.
    """
    g = torch.Generator().manual_seed(5)
    cases = []
    for name, shape, D, F_ in [("x of shape (2, 4, 16), F = 40", (2, 4, 16), 16, 40),
                               ("x of shape (3, 8), F = 24", (3, 8), 8, 24)]:
        x = torch.randn(shape, generator=g)
        wg, wu = torch.randn(F_, D, generator=g) / D ** 0.5, torch.randn(F_, D, generator=g) / D ** 0.5
        wd = torch.randn(D, F_, generator=g) / F_ ** 0.5
        mlp = MLP(SimpleNamespace(hidden_size=D, intermediate_size=F_))
        with torch.no_grad():
            mlp.gate_proj.weight.copy_(wg), mlp.up_proj.weight.copy_(wu), mlp.down_proj.weight.copy_(wd)
            expected = mlp(x)
        gate, up = x @ wg.T, x @ wu.T
        mistakes = {
            "silu applied to the up projection instead of the gate": (gate * F.silu(up)) @ wd.T,
            "GELU used instead of SiLU (that is GeGLU)": (F.gelu(gate) * up) @ wd.T,
            "ReLU used instead of SiLU (ReGLU)": (F.relu(gate) * up) @ wd.T,
            "a sigmoid gate, σ(gate)·up, instead of silu(gate)·up = gate·σ(gate)·up": (torch.sigmoid(gate) * up) @ wd.T,
            "the up projection left out: down(silu(gate(x)))": F.silu(gate) @ wd.T,
            "no activation at all: down(gate(x) ⊙ up(x))": (gate * up) @ wd.T,
        }
        cases.append(Case(name, (x, wg, wu, wd), expected, mistakes))
    return run_cases("SwiGLU", fn, cases, lambda got, exp: compare_tensors(got, exp, atol=1e-5, rtol=1e-4),
                     "mimo_lite.model.MLP", "Recall: down(silu(x Wgᵀ) ⊙ (x Wuᵀ)), silu(z) = z·σ(z).")


# ---- the MTP input ----------------------------------------------------------------------------

def _mtp_model(seed: int = 6) -> MiMoForCausalLM:
    """A smoke-size model whose norms have random weights, so that swapping two of them shows."""
    torch.manual_seed(seed)
    model = MiMoForCausalLM(preset("smoke", vocab_size=64, num_hidden_layers=1)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name or name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model


def _library_mtp_input(hidden, input_ids, model):
    """The input of MTP layer 0's decoder block, captured from the library's own `mtp_forward`."""
    captured = []
    layer = model.model.mtp_layers[0]
    handle = layer.input_layernorm.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        with torch.no_grad():
            model.mtp_forward(hidden, input_ids)
    finally:
        handle.remove()
    return captured[0]


def check_mtp_input(fn):
    """Check `mtp_input(hidden, input_ids, model) -> Tensor` against `MiMoForCausalLM.mtp_forward`.

    hidden: (B, T, D) the main stack's last hidden states *before* the final norm; input_ids:
    (B, T); model: a `MiMoForCausalLM`. Returns (B, T−1, D): for each t = 0..T−2, what MTP layer
    0 (`model.model.mtp_layers[0]`) feeds its decoder block,
        input_proj(cat([hidden_layernorm(h_t), token_layernorm(embed_tokens(x_{t+1}))], dim=-1)).
    """
    model = _mtp_model()
    layer, embed = model.model.mtp_layers[0], model.model.embed_tokens
    g = torch.Generator().manual_seed(7)
    cases = []
    for name, (B, T) in [("a batch of 2 sequences of 7 tokens", (2, 7)),
                         ("3 sequences of 12 tokens", (3, 12)),
                         ("one sequence of 2 tokens (a single MTP position)", (1, 2))]:
        hidden = torch.randn(B, T, model.config.hidden_size, generator=g)
        ids = torch.randint(0, model.config.vocab_size, (B, T), generator=g)
        with torch.no_grad():
            h, nxt, same = hidden[:, :-1], embed(ids[:, 1:]), embed(ids[:, :-1])
            proj = layer.input_proj
            mistakes = {
                "h_t paired with the embedding of x_t, not of the next token x_{t+1}":
                    proj(torch.cat([layer.hidden_layernorm(h), layer.token_layernorm(same)], -1)),
                "the embedding put first in the concatenation (DeepSeek-V3's order; MiMo puts h_t first)":
                    proj(torch.cat([layer.token_layernorm(nxt), layer.hidden_layernorm(h)], -1)),
                "the two norms swapped (token_layernorm on h_t, hidden_layernorm on the embedding)":
                    proj(torch.cat([layer.token_layernorm(h), layer.hidden_layernorm(nxt)], -1)),
                "no RMSNorm before the concatenation": proj(torch.cat([h, nxt], -1)),
                "the main model's final norm applied to h_t first (MTP reads h_t before `model.norm`)":
                    proj(torch.cat([layer.hidden_layernorm(model.model.norm(h)),
                                    layer.token_layernorm(nxt)], -1)),
                "h_{t+1} paired with x_{t+1}: the hidden states shifted along with the tokens":
                    proj(torch.cat([layer.hidden_layernorm(hidden[:, 1:]), layer.token_layernorm(nxt)], -1)),
            }
        cases.append(Case(name, (hidden, ids, model), _library_mtp_input(hidden, ids, model), mistakes))

    def compare(got, expected):
        if isinstance(got, torch.Tensor) and got.shape[:1] == expected.shape[:1] \
                and got.shape[1] == expected.shape[1] + 1:
            raise Mismatch(f"expected {expected.shape[1]} positions, got {got.shape[1]}: the last "
                            f"token has no next token to pair with, so MTP has T − 1 positions.")
        compare_tensors(got, expected, atol=1e-5, rtol=1e-4)

    return run_cases("MTP input", fn, cases, compare, "the input of MTP layer 0 in "
                     "mimo_lite.model.MiMoForCausalLM.mtp_forward",
                     "Recall: input_proj(cat([hidden_layernorm(h[:, :-1]), "
                     "token_layernorm(embed_tokens(input_ids[:, 1:]))], dim=-1)).")

