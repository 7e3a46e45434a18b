"""MiMo-7B in plain PyTorch: RMSNorm, RoPE, GQA attention, SwiGLU, the decoder block, the MTP layer.

Read top to bottom it follows notebook 03. Parameter names equal the released checkpoint's
(facts file §2.1), so `MiMoForCausalLM(preset("mimo_7b")).load_state_dict(official)` needs no
renaming, and the main stack computes exactly what transformers' `Qwen2ForCausalLM` computes.

Shapes: B batch, T query length, S key length (cache + new), D hidden, H query heads,
K key/value heads, d head_dim, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import ModelOutput

from .config import MiMoConfig


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · w, computed in fp32 (as Qwen2/MiMo do)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """cos and sin of the RoPE angles, each (B, T, d).

    Channel pair i rotates at frequency θ^(-2i/d); position p turns it by p·θ^(-2i/d). Raising
    the base θ (10k → 640k in MiMo's stage 3) slows every rotation, so far-apart positions stay
    distinguishable over a 32K context. Computed on the fly: no buffer to keep in sync with θ.
    """
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, device=positions.device,
                                       dtype=torch.float32) / head_dim)   # (d/2,)
    angles = positions.float()[..., None] * inv_freq                      # (B, T, d/2)
    angles = torch.cat([angles, angles], dim=-1)                          # (B, T, d): halves layout
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel i with channel i + d/2 ("rotate half", the Llama/Qwen layout). x: (B, h, T, d)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None] + rotated * sin[:, None]


class Attention(nn.Module):
    """Grouped-query attention: H query heads share K key/value heads (MiMo-7B: 32 share 8).

    Bias on q/k/v only (Qwen2 style). The cache stores K heads, not H: a 4× smaller KV cache.
    """

    def __init__(self, config: MiMoConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.head_dim
        D, d = config.hidden_size, self.head_dim
        bias = config.attention_bias
        self.q_proj = nn.Linear(D, self.n_heads * d, bias=bias)
        self.k_proj = nn.Linear(D, self.n_kv_heads * d, bias=bias)
        self.v_proj = nn.Linear(D, self.n_kv_heads * d, bias=bias)
        self.o_proj = nn.Linear(self.n_heads * d, D, bias=False)

    def forward(self, x, cos, sin, mask=None, cache: Cache | None = None):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)     # (B, H, T, d)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, K, T, d)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)                                  # (B, K, S, d)
        # a branch, not `is_causal=T > 1`: with dynamic shapes T is symbolic and SDPA takes
        # only a real bool; torch.compile turns the branch into a guard on T
        causal = False
        if mask is None and T > 1:
            causal = True
        # softmax(q kᵀ / √d + mask) v, each group of H/K query heads reading one KV head
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal,
            enable_gqa=self.n_heads != self.n_kv_heads)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) ⊙ up(x)); no biases."""

    def __init__(self, config: MiMoConfig):
        super().__init__()
        D, F_ = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(D, F_, bias=False)
        self.up_proj = nn.Linear(D, F_, bias=False)
        self.down_proj = nn.Linear(F_, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then + mlp(norm(·))."""

    def __init__(self, config: MiMoConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, mask=None, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class MTPLayer(DecoderLayer):
    """One multi-token-prediction layer (report §2.2, Fig. 2), as the released checkpoint defines it.

    Given h_t (the main stack's last hidden state, before the final norm) and the embedding of
    the next token x_{t+1}, it predicts x_{t+2}:
        z = input_proj(cat([hidden_layernorm(h_t), token_layernorm(emb(x_{t+1}))]))
        z = decoder_block(z);   logits = lm_head(final_layernorm(z))
    The order of the concatenation (hidden first) is MiMo's; DeepSeek-V3 puts the embedding first.
    """

    def __init__(self, config: MiMoConfig, layer_idx: int):
        super().__init__(config, layer_idx)
        D = config.hidden_size
        self.token_layernorm = RMSNorm(D, config.rms_norm_eps)
        self.hidden_layernorm = RMSNorm(D, config.rms_norm_eps)
        self.input_proj = nn.Linear(2 * D, D, bias=False)
        self.final_layernorm = RMSNorm(D, config.rms_norm_eps)

    def forward(self, hidden, next_token_embeds, cos, sin, mask=None, cache=None):
        z = self.input_proj(torch.cat([self.hidden_layernorm(hidden),
                                       self.token_layernorm(next_token_embeds)], dim=-1))
        z = super().forward(z, cos, sin, mask, cache)
        return z, self.final_layernorm(z)   # the next MTP layer chains from z; lm_head reads the normed one


@dataclass
class MiMoOutput(ModelOutput):
    """loss = main_loss + λ·mtp_loss. `hidden_states` is the last layer's output before `model.norm`."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    main_loss: torch.Tensor | None = None
    mtp_loss: torch.Tensor | None = None
    mtp_logits: tuple[torch.Tensor, ...] | None = None
    cache: Cache | None = None
    hidden_states: torch.Tensor | None = None


class MiMoPreTrainedModel(PreTrainedModel):
    config_class = MiMoConfig
    config: MiMoConfig
    base_model_prefix = "model"
    _no_split_modules = ["DecoderLayer", "MTPLayer"]
    _supports_sdpa = True
    _can_compile_fullgraph = True
    supports_gradient_checkpointing = False


class MiMoModel(MiMoPreTrainedModel):
    """Embedding, decoder stack and final norm; the MTP layers are stored here, as in the checkpoint."""

    def __init__(self, config: MiMoConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        # MTP layers use cache slots after the main layers' (the scheme vLLM uses too).
        self.mtp_layers = nn.ModuleList(MTPLayer(config, config.num_hidden_layers + k)
                                        for k in range(config.num_nextn_predict_layers))
        self.activation_checkpointing = False     # the trainers' switch (train/run.py)
        self.post_init()

    def call_block(self, block, *args):
        """block(*args). With activation checkpointing, while gradients are on, only the block's
        inputs are kept for the backward, which runs the block again for its activations: the same
        gradients, for one more forward of the blocks and a fraction of the activation memory."""
        if self.activation_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def rope(self, positions, dtype):
        return rope_cos_sin(positions, self.config.head_dim, self.config.rope_theta, dtype)

    def forward(self, input_ids, position_ids=None, attention_mask=None, cache=None):
        """Returns the last layer's output before `norm`, (B, T, D)."""
        x = self.embed_tokens(input_ids)
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            position_ids = positions_from(attention_mask, input_ids.shape, past, input_ids.device)
        mask = attention_bias_mask(attention_mask, input_ids.shape[1], past, x.device)
        cos, sin = self.rope(position_ids, x.dtype)
        for layer in self.layers:
            x = self.call_block(layer, x, cos, sin, mask, cache)
        return x


def positions_from(attention_mask, shape, past: int, device) -> torch.Tensor:
    """Position ids (B, T): 0, 1, 2, … after the cache; left padding is skipped via the mask."""
    B, T = shape
    if attention_mask is None:
        return torch.arange(past, past + T, device=device).expand(B, T)
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)[:, -T:]


def attention_bias_mask(attention_mask, T: int, past: int, device) -> torch.Tensor | None:
    """Boolean (B, 1, T, S) mask, or None when plain causal attention suffices (fast SDPA path).

    Query i (absolute position past+i) may see key j iff j ≤ past+i and key j is not padding.
    A 4-D boolean mask is used as given: a cache whose rows hold different lengths builds its own.
    """
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask
    if attention_mask is None and (past == 0 or T == 1):
        return None
    S = past + T
    causal = torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=past)   # (T, S)
    if attention_mask is None:
        return causal[None, None]
    keep = causal[None, None] & attention_mask[:, None, None, -S:].bool()           # (B, 1, T, S)
    # A query at a padded slot sees no key, which would give NaN: let it see all (output unused).
    return keep | ~keep.any(-1, keepdim=True)


class MiMoForCausalLM(MiMoPreTrainedModel, GenerationMixin):
    """The model and its untied `lm_head`, with the MTP objective: L = L_main + λ·L_mtp."""

    def __init__(self, config: MiMoConfig):
        super().__init__(config)
        self.model = MiMoModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids: torch.Tensor, attention_mask=None, position_ids=None,
                cache: Cache | None = None, labels: torch.Tensor | None = None,
                use_cache: bool | None = None, mtp_loss_weight: float | None = None,
                return_mtp: bool | None = None, logits_to_keep: int = 0, return_logits: bool = True,
                past_key_values: Cache | None = None, **kwargs) -> MiMoOutput:
        """input_ids (B, T). With `labels`, the loss (HF convention: labels are the inputs; -100 ignored).

        MTP logits are computed when training the MTP (labels given) or when `return_mtp=True`;
        `mtp_logits[k][:, t]` predicts token t + k + 2. `return_logits=False` skips the lm_head
        and returns only `hidden_states` (before `norm`): GRPO scores its answer tokens from them
        a chunk at a time (`rl/logprobs.py`), never holding the (B, T, V) logits.

        `past_key_values` is the cache under the name transformers used before 5.24 (its
        `generate` passes it so, and reads the same object back, updated in place).
        """
        cache = cache if cache is not None else past_key_values
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        h = self.model(input_ids, position_ids, attention_mask, cache)   # (B, T, D)
        logits = None
        if return_logits or labels is not None:
            keep = slice(-logits_to_keep, None) if logits_to_keep else slice(None)
            logits = self.lm_head(self.model.norm(h[:, keep]))                    # (B, T, V)

        want_mtp = return_mtp if return_mtp is not None else labels is not None
        mtp_logits = (self.mtp_forward(h, input_ids, position_ids, attention_mask)
                      if want_mtp and self.model.mtp_layers else None)

        loss = main_loss = mtp_loss = None
        if labels is not None:
            main_loss = shifted_cross_entropy(logits, labels, shift=1)
            loss = main_loss
            if mtp_logits:
                # average over MTP depths, as DeepSeek-V3 does; MiMo pre-trains with one layer
                mtp_loss = sum(shifted_cross_entropy(lg, labels, shift=k + 2)
                               for k, lg in enumerate(mtp_logits)) / len(mtp_logits)
                weight = self.config.mtp_loss_weight if mtp_loss_weight is None else mtp_loss_weight
                loss = main_loss + weight * mtp_loss
        return MiMoOutput(loss=loss, logits=logits, main_loss=main_loss, mtp_loss=mtp_loss,
                          mtp_logits=mtp_logits, cache=cache, hidden_states=h)

    def mtp_forward(self, h: torch.Tensor, input_ids: torch.Tensor, position_ids=None,
                    attention_mask=None) -> tuple[torch.Tensor, ...]:
        """Training-time MTP over a whole sequence (no cache). Returns one (B, T-k-1, V) tensor per layer.

        Layer k at index t combines the previous depth's state at t with emb(x_{t+k+1}) and
        predicts x_{t+k+2}. Layer 0 reads the main stack's h_t; layer k>0 chains from layer k-1's
        output (the sequential, DeepSeek-V3 reading of the report's Fig. 2).

        Packed sequences (SFT) pass their restarting `position_ids` and a 4-D block mask M: index
        t then takes token t+k+1's position, and query i sees index j only when M lets token
        i+k+1 see token j+k+1 *and* token i see token j — so an index that straddles two
        documents (h from one, the next token from the other) leaks into neither.
        """
        block = attention_mask if attention_mask is not None and attention_mask.dim() == 4 else None
        outputs = []
        for k, layer in enumerate(self.model.mtp_layers):
            T = h.shape[1] - 1
            if T < 1:
                break
            token_embeds = self.model.embed_tokens(input_ids[:, k + 1:k + 1 + T])          # x_{t+k+1}
            if position_ids is None:
                positions = torch.arange(k + 1, k + 1 + T, device=h.device).expand(h.shape[0], T)
            else:
                positions = position_ids[:, k + 1:k + 1 + T]
            cos, sin = self.model.rope(positions, h.dtype)
            mask = None
            if block is not None:
                mask = block[..., k + 1:k + 1 + T, k + 1:k + 1 + T] & block[..., :T, :T]
            h, normed = self.model.call_block(layer, h[:, :T], token_embeds, cos, sin, mask)   # (B, T, D)
            outputs.append(self.lm_head(normed))
        return tuple(outputs)


AutoModelForCausalLM.register(MiMoConfig, MiMoForCausalLM, exist_ok=True)


def shifted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, shift: int) -> torch.Tensor:
    """Mean CE of logits[:, t] against labels[:, t + shift] over positions whose label is not -100.

    The labels are shifted, not the logits: positions past the end get the ignored label, so
    the (B, T, V) logits, the largest tensor of a step, are used in place instead of copied.
    """
    n = logits.shape[1]
    target = labels[:, shift:shift + n]
    if target.shape[1] < n:
        target = F.pad(target, (0, n - target.shape[1]), value=-100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1),
                           ignore_index=-100)


def qwen2_twin(model: MiMoForCausalLM):
    """transformers' own `Qwen2ForCausalLM` holding this model's main-stack weights (MTP keys dropped).

    The kit's proof of its architecture (tests, notebook 03) and the reference in the benchmarks.
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    kit_only = ("model_type", "num_nextn_predict_layers", "mtp_loss_weight", "architectures",
                "auto_map")
    config = Qwen2Config(**{k: v for k, v in model.config.to_dict().items() if k not in kit_only})
    weight = model.lm_head.weight
    twin = Qwen2ForCausalLM(config).to(device=weight.device, dtype=weight.dtype)
    twin.load_state_dict({k: v for k, v in model.state_dict().items() if "mtp_layers" not in k},
                         strict=True)
    return twin.eval()
