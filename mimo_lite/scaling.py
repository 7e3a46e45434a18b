"""What a model of a given shape costs to train and to roll out: FLOPs, GPU-days, memory per GPU.

Plain arithmetic on a config's fields (any object with MiMoConfig's field names, e.g.
`preset("mimo_7b")`); nothing here builds a model or touches torch, so a 7B answer takes
microseconds. `tests/test_scaling.py` checks each formula against numbers worked out by hand and
the parameter count against the model built on the meta device.

    >>> from mimo_lite.config import preset
    >>> parameter_count(preset("mimo_7b"))["total"]          # facts file §1.2
    7833409536
    >>> kv_cache_bytes_per_token(preset("mimo_7b"))          # 2 · 36 layers · 8 heads · 128 · 2 bytes
    147456

Units: bytes and FLOPs as plain numbers; `GiB = 2**30`.
"""

from __future__ import annotations

GiB = 2**30
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}   # dense bf16 FLOP/s per GPU (vendor sheets)
SECONDS_PER_DAY = 86_400


def parameter_count(config) -> dict[str, int]:
    """Parameters per component, as `MiMoForCausalLM(config)` holds them.

    A decoder layer: q/k/v/o projections (bias on q/k/v when `attention_bias`), SwiGLU's gate, up
    and down (no bias), two RMSNorm weights. An MTP layer: a decoder layer plus `input_proj`
    (2D → D, no bias) and three more norms (token, hidden, final). The embedding and `lm_head` are
    V × D each, one matrix when `tie_word_embeddings`.
    """
    c = config
    D, F, V, d = c.hidden_size, c.intermediate_size, c.vocab_size, c.head_dim
    q, kv = c.num_attention_heads * d, c.num_key_value_heads * d
    bias = (q + 2 * kv) if c.attention_bias else 0
    attention = D * q + 2 * D * kv + q * D + bias
    mlp = 3 * D * F
    layer = attention + mlp + 2 * D
    mtp_layer = layer + 2 * D * D + 3 * D
    rows = {
        "embedding": V * D,
        "attention (per layer)": attention,
        "MLP (per layer)": mlp,
        "decoder layer": layer,
        "decoder layers (all)": c.num_hidden_layers * layer,
        "final norm": D,
        "lm_head": 0 if c.tie_word_embeddings else V * D,
        "MTP layer": mtp_layer,
        "MTP layers (all)": c.num_nextn_predict_layers * mtp_layer,
    }
    rows["total"] = (rows["embedding"] + rows["decoder layers (all)"] + rows["final norm"]
                     + rows["lm_head"] + rows["MTP layers (all)"])
    return rows


def train_flops_per_token(config, seq_len: int) -> float:
    """Training FLOPs per token: 6·N + 12·L·T·D (PaLM's estimate) + 6·V·D per MTP layer.

    6·N: every weight is used in one multiply-add (2 FLOPs) forward and two backward (input and
    weight gradients), N the parameters outside the embedding (a lookup, not a matmul). 12·L·T·D:
    attention's scores QKᵀ and their use on V, 2·T·D multiply-adds per token and layer, ×3 for
    backward; the causal mask's half is not subtracted, and the MTP layer's attention is left out.
    6·V·D per MTP layer: each MTP layer predicts through the model's output head again (a V × D
    matmul that N counts once). At 7B this is 6% of the total; in a 4-block slice of 7B's width,
    where the head dominates, 37%.
    """
    counts = parameter_count(config)
    n = counts["total"] - counts["embedding"]
    mtp_head = 6 * config.vocab_size * config.hidden_size * config.num_nextn_predict_layers
    return 6 * n + 12 * config.num_hidden_layers * seq_len * config.hidden_size + mtp_head


def gpu_days(tokens: float, flops_per_token: float, mfu: float, peak_flops: float) -> float:
    """GPU-days to train on `tokens` at model FLOPs utilisation `mfu` of a GPU peaking at `peak_flops`.

    >>> round(gpu_days(1e12, 6e9, 0.5, 1e15), 2)      # 6e21 FLOPs at 5e14 FLOP/s = 1.2e7 s
    138.89
    """
    return tokens * flops_per_token / (mfu * peak_flops) / SECONDS_PER_DAY


def fsdp_state_bytes(config, gpus: int) -> dict[str, float]:
    """Bytes per GPU for the model's state under FSDP2 full sharding (ZeRO-3), as
    `mimo_lite/train/parallel.py` shards it: bf16 compute, fp32 master weights, AdamW.

    Sharded over `gpus`: fp32 master weights (4 bytes a parameter), fp32 gradients (4; FSDP2 keeps
    a sharded parameter's gradient in its dtype) and Adam's two fp32 moments (8) — 16 bytes × N /
    gpus. Gathered whole on every GPU, in bf16 (2 bytes): the root unit (embedding, final norm,
    lm_head), which FSDP2 keeps gathered from forward to backward, and two decoder blocks (the one
    computing and the next, prefetched). Not counted: communication buffers, the allocator's
    fragmentation and the CUDA context (plan a few GiB of headroom).
    """
    p = parameter_count(config)
    n = p["total"]
    root = p["embedding"] + p["final norm"] + p["lm_head"]
    block = max(p["decoder layer"], p["MTP layer"] if config.num_nextn_predict_layers else 0)
    return {
        "master weights (fp32)": 4 * n / gpus,
        "gradients (fp32)": 4 * n / gpus,
        "Adam moments (fp32)": 8 * n / gpus,
        "gathered bf16 (root + 2 blocks)": 2 * (root + 2 * block),
    }


def activation_bytes(config, seq_len: int, checkpointing: bool = False) -> dict[str, float]:
    """Bytes of activations kept for backward for one sequence of `seq_len` tokens, in bf16.

    Per token and decoder block, the tensors autograd saves (elements; D hidden, F intermediate,
    K·d the key/value width): attention — block input, normed input, q, k, v and the attention
    output: 4·D + 2·K·d; SwiGLU — its input, normed input, gate, up, silu(gate) and their product:
    2·D + 4·F. × 2 bytes. Assumptions: a fused attention kernel (`scaled_dot_product_attention`'s
    flash or memory-efficient path) that keeps no T × T score matrix, no dropout, the MTP layer
    counted as one more block, norms' fp32 internals and the per-head log-sum-exp neglected.

    Head: per token and output head (main and each MTP layer), bf16 logits (2·V bytes) and the
    fp32 log-softmax the cross-entropy saves (4·V). It is not checkpointed, and at V = 151,680 it
    is the largest term; chunking the loss over the sequence removes it (not done in the kit).

    `checkpointing=True` (activation checkpointing per block): each block keeps only its input
    (2·D bytes per token) and recomputes the rest in backward, where one block's full set is alive.

        >>> from mimo_lite.config import preset
        >>> activation_bytes(preset("mimo_7b"), 1)["per block, per token"]    # 2·(6·4096 + 2·1024 + 4·11008)
        141312
    """
    c = config
    D, F, V = c.hidden_size, c.intermediate_size, c.vocab_size
    per_block = 2 * (6 * D + 2 * c.num_key_value_heads * c.head_dim + 4 * F)
    blocks = c.num_hidden_layers + c.num_nextn_predict_layers
    heads = 1 + c.num_nextn_predict_layers
    kept = blocks * 2 * D + per_block if checkpointing else blocks * per_block
    return {
        "per block, per token": per_block,
        "blocks": kept * seq_len,
        "head (logits + log-softmax)": heads * 6 * V * seq_len,
        "total": (kept + heads * 6 * V) * seq_len,
    }


def memory_per_gpu(config, gpus: int, seq_len: int, micro_batch: int = 1,
                   checkpointing: bool = False) -> dict[str, float]:
    """Bytes per GPU for one training step: `fsdp_state_bytes` plus the activations of
    `micro_batch` sequences of `seq_len` tokens (`activation_bytes`); its "total" is their sum."""
    rows = dict(fsdp_state_bytes(config, gpus))
    rows["activations"] = micro_batch * activation_bytes(config, seq_len, checkpointing)["total"]
    rows["total"] = sum(rows.values())
    return rows


def kv_cache_bytes_per_token(config, bytes_per_value: int = 2) -> int:
    """K and V of every layer and key/value head for one token: 2 · L · K · d · bytes (bf16: 2).
    The MTP layer is a draft head, not counted (a rollout engine may keep its cache apart)."""
    c = config
    return 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * bytes_per_value
