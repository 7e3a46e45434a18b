"""The decoder's forward pass again, laid out for generation: fewer operations, each doing more.

At batch 1 a decoding step multiplies one row vector by each weight matrix. Two costs remain:
reading the weights (the toy model's 8 MB of fp32 per token; a CPU core streams ~16 GB/s from
beyond its L2, so ~0.5 ms) and starting operations (a few microseconds each on a CPU, a kernel
launch each on a GPU). `MiMoForCausalLM.forward` reads clearly but issues ~70 ATen operations
per block; this module issues about 45, from weights prepared once:

  q, k, v projections   one matrix [W_q/√d; W_k; W_v] (and one bias): one matmul, and the
                        attention's 1/√d already applied
  gate, up projections  one matrix [W_gate; W_up]: one matmul instead of two
  RMSNorm weights       folded into the matrix that follows each norm: norm(x)·w @ Wᵀ =
                        norm(x) @ (diag(w)·Wᵀ)
  every matrix          stored transposed and contiguous, so `x @ Wᵀ` is a plain `mm` on
                        (B·T, D) rows, no reshapes
  RoPE                  cos/sin from a table; q and k rotated together, rotate_half(x)·sin
                        written roll(x, d/2)·[-sin, sin]
  attention             one query per row on a CPU: two batched matmuls and a softmax, which
                        start faster than SDPA; masks turned additive once per pass

The arithmetic is the model's except where a fused or folded matmul sums in another order:
hidden states and logits agree to float rounding (tests/test_infer_fused.py), and greedy
tokens are the model's.

A fused copy is a snapshot of the weights, so it must never outlive them. `decoder_for(model)`,
called at the start of every generation run, returns a copy that equals the model as it is now
(rebuilt when `weights_signature` changed, reused otherwise), or, when the model's forward is
not the plain architecture (peft's LoRA layers, a replaced module, a hook), a `ModuleDecoder`
that runs the model's own modules.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from ..model import MLP, Attention, DecoderLayer, MiMoForCausalLM, MiMoModel, MTPLayer, RMSNorm
from .cache import CacheWindow, KVCache


def _t(w: torch.Tensor, row_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Wᵀ as a contiguous (in, out) matrix, its rows scaled by the preceding RMSNorm's weight.

    norm(x)·w @ Wᵀ = norm(x) @ (diag(w)·Wᵀ): folding w into the matrix saves one operation
    per norm (the sum runs in another order, so results agree to float rounding).
    """
    w = w.detach().t()
    if row_scale is not None:
        w = row_scale.detach()[:, None] * w
    return w.contiguous()


class _Block:
    """One decoder block's weights, fused, transposed and with its norms' weights folded in."""

    def __init__(self, layer):
        attn, mlp = layer.self_attn, layer.mlp
        self.H, self.K, self.d = attn.n_heads, attn.n_kv_heads, attn.head_dim
        scale = self.d ** -0.5        # softmax(q·k/√d): folded into q's weights once
        self.qkv = _t(torch.cat([attn.q_proj.weight * scale, attn.k_proj.weight, attn.v_proj.weight]),
                      layer.input_layernorm.weight)
        biases = [attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]
        self.qkv_bias = None if biases[0] is None else torch.cat([biases[0] * scale, *biases[1:]]).detach()
        self.o = _t(attn.o_proj.weight)
        self.gate_up = _t(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]),
                          layer.post_attention_layernorm.weight)
        self.down = _t(mlp.down_proj.weight)
        self.ffn = mlp.gate_proj.weight.shape[0]


class _MTP(_Block):
    """An MTP layer: its block, `input_proj` with both input norms folded in, and its own copy of
    the LM head with its final norm folded in."""

    def __init__(self, layer, lm_head: torch.Tensor):
        super().__init__(layer)
        self.input_proj = _t(layer.input_proj.weight, torch.cat([layer.hidden_layernorm.weight,
                                                                 layer.token_layernorm.weight]))
        self.lm_head = _t(lm_head, layer.final_layernorm.weight)


def normalize(x: torch.Tensor, eps: tuple[torch.Tensor, torch.Tensor, float]) -> torch.Tensor:
    """x / sqrt(mean(x²) + eps) in fp32, returned in x's dtype: `RMSNorm` before its weight.

    On a CPU, mean(x²) + eps is written sum(x·x) / D + eps with D and eps held as 0-dim fp32
    tensors: the arithmetic of ATen's `mean` and of a Python-float `eps`, but a Python number in an
    operation costs three extra dispatches (wrap, convert, copy), and `mean` dispatches to four.
    On a GPU, where each of those eight operations is a kernel launch, `F.rms_norm` computes the
    same in one (eps as the Python float, the third entry).
    """
    if x.is_cuda:
        return F.rms_norm(x, x.shape[-1:], eps=eps[2])
    y = x.float()
    epsilon, dim, _ = eps
    y = y * torch.rsqrt((y * y).sum(-1, keepdim=True) / dim + epsilon)
    return y if x.dtype == torch.float32 else y.to(x.dtype)


def single_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(q·kᵀ + mask)·v for one query per row, as two batched matmuls: (B, H·d).

    q (B, H, d), already scaled by 1/√d; k, v (B, K, S, d); mask additive, (B or 1, 1, 1, S).
    Query head h reads KV head h // (H/K), as SDPA's enable_gqa does.
    """
    B, H, d = q.shape
    K, S = k.shape[1], k.shape[2]
    scores = torch.bmm(q.reshape(B * K, H // K, d), k.reshape(B * K, S, d).transpose(1, 2))  # (B·K, G, S)
    if mask is not None:
        scores = (scores.view(B, K, H // K, S) + mask).view(B * K, H // K, S)
    return torch.bmm(scores.softmax(-1), v.reshape(B * K, S, d)).view(B, H * d)


def _span_mask(columns: torch.Tensor, span: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask (1, 1, T, span): query i sees columns ≤ columns[i]."""
    seen = torch.arange(span, device=columns.device)[None] <= columns[:, None]
    return torch.zeros(seen.shape, dtype=dtype, device=columns.device).masked_fill_(~seen, float("-inf"))[None, None]


class FusedDecoder:
    """The main stack (and MTP layers) of `model` for cached generation.

        fused = FusedDecoder(model)             # or decoder_for(model): reused while current
        h = fused.forward(ids, window)          # (B, T, D), as model.model(ids, ..., cache=window)
        logits = fused.logits(h[:, -1])         # as model.lm_head(model.model.norm(...))
    """

    def __init__(self, model):
        """Copy and fuse `model`'s current weights (milliseconds at toy size, see `decoder_for`).

        The copy shares no storage with the model, the embedding included: a run decodes with one
        set of weights even if the model is trained meanwhile.
        """
        m, c = model.model, model.config
        with torch.no_grad():
            self.embed = m.embed_tokens.weight.detach().clone()
            # (eps, D) as 0-dim fp32 tensors, and eps as a number: see normalize
            self.eps = (*(torch.tensor(v, dtype=torch.float32, device=self.embed.device)
                          for v in (c.rms_norm_eps, float(c.hidden_size))), c.rms_norm_eps)
            self.blocks = [_Block(layer) for layer in m.layers]
            self.mtp_blocks = [_MTP(layer, model.lm_head.weight) for layer in m.mtp_layers]
            self.lm_head = _t(model.lm_head.weight, m.norm.weight)
            positions = torch.arange(c.max_position_embeddings, device=self.embed.device)
            cos, sin = m.rope(positions[None], self.embed.dtype)                # (1, S, d)
            half = c.head_dim // 2
            self.cos = cos[0, :, None]                                          # (S, 1, d)
            self.sin = torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)[:, None]  # signs of rotate_half

    def _block(self, b: _Block, x: torch.Tensor, cos, sin, attend):
        """x (B, T, D) → (B, T, D); every matmul sees the (B·T, D) rows.

        attend(q (B, T, H, d), k, v (B, T, K, d)) stores the new keys and values and returns the
        attention output (B·T, H·d): through a CacheWindow (`_window_attention`) or at per-row
        positions over a fixed span (`_static_attention`, the decode step of `decode_step`).
        """
        B, T, D = x.shape
        H, K, d = b.H, b.K, b.d
        x = x.view(B * T, D)
        y = normalize(x, self.eps)
        qkv = (torch.mm(y, b.qkv) if b.qkv_bias is None else torch.addmm(b.qkv_bias, y, b.qkv))
        qkv = qkv.view(B, T, H + 2 * K, d)
        qk = qkv[:, :, :H + K]
        qk = torch.addcmul(qk * cos, qk.roll(d // 2, -1), sin)                     # RoPE on q and k
        out = attend(qk[:, :, :H], qk[:, :, H:], qkv[:, :, H + K:])
        x = x + torch.mm(out, b.o)
        gate_up = torch.mm(normalize(x, self.eps), b.gate_up)
        x = x + torch.mm(F.silu(gate_up[:, :b.ffn]) * gate_up[:, b.ffn:], b.down)
        return x.view(B, T, D)

    @staticmethod
    def _window_attention(window: CacheWindow, slot: int):
        """attend() through `window`: cache slot `slot`, the window's mask (or plain causal)."""
        def attend(q, k, v):
            B, T, H, d = q.shape
            k, v = window.update(k.transpose(1, 2), v.transpose(1, 2), slot)     # (B, K, S, d)
            mask = window.additive_mask(q.dtype)
            if T == 1 and q.device.type == "cpu":
                # one query per row: two batched matmuls beat SDPA's set-up
                return single_query_attention(q[:, 0], k, v, mask)
            return F.scaled_dot_product_attention(
                q.transpose(1, 2), k, v, attn_mask=mask, is_causal=mask is None and T > 1,
                enable_gqa=H != k.shape[1], scale=1.0).transpose(1, 2).reshape(B * T, H * d)
        return attend

    def _rope(self, positions: slice | torch.Tensor):
        """cos, sin for a range of positions, (T, 1, d), or per-row positions (B, T): (B, T, 1, d)."""
        return self.cos[positions], self.sin[positions]

    def forward(self, input_ids: torch.Tensor, window: CacheWindow) -> torch.Tensor:
        """Main stack over new tokens (B, T) written through `window`: (B, T, D) before the final norm."""
        x = self.embed[input_ids]
        cos, sin = self._rope(slice(window.start, window.span) if window.uniform else window.position_ids)
        for i, b in enumerate(self.blocks):
            x = self._block(b, x, cos, sin, self._window_attention(window, i))
        return x

    def decode_step(self, ids: torch.Tensor, positions: torch.Tensor, cache: KVCache,
                    span: int) -> torch.Tensor:
        """One new token per row with shapes fixed by (B, span) alone: what a CUDA graph captures.

        ids, positions (B,): row b's token and its position, which is also the column of cache
        row b it writes its keys and values to. Row b attends to columns 0..positions[b] of the
        first `span` columns: the mask, not the shape, follows the lengths, so one graph serves
        every step while the longest row stays below `span`. Returns logits (B, V).
        """
        x = self.embed[ids][:, None]                                              # (B, 1, D)
        cos, sin = self._rope(positions[:, None])                                 # (B, 1, 1, d)
        columns = torch.arange(span, device=ids.device)
        mask = torch.zeros(ids.shape[0], 1, 1, span, dtype=x.dtype, device=ids.device).masked_fill_(
            columns > positions[:, None, None, None], float("-inf"))              # (B, 1, 1, S)
        rows = torch.arange(ids.shape[0], device=ids.device)
        for i, b in enumerate(self.blocks):
            x = self._block(b, x, cos, sin, self._static_attention(
                cache.k_layers[i], cache.v_layers[i], rows, positions, mask, span))
        return self.logits(x[:, 0])

    @staticmethod
    def _static_attention(keys: torch.Tensor, values: torch.Tensor, rows: torch.Tensor,
                          positions: torch.Tensor, mask: torch.Tensor, span: int):
        """attend() for `decode_step`: write k, v of row b at column positions[b] of cache row b
        (keys, values: one layer's (batch, K, max_length, d); rows: 0..B-1), attend over the
        first `span` columns."""
        def attend(q, k, v):
            keys[rows, :, positions] = k[:, 0]                                   # (B, K, d) each
            values[rows, :, positions] = v[:, 0]
            B = q.shape[0]
            return single_query_attention(q[:, 0], keys[:B, :, :span], values[:B, :, :span], mask)
        return attend

    def span_forward(self, ids: torch.Tensor, columns: torch.Tensor, cache: KVCache, span: int) -> torch.Tensor:
        """Main stack over T tokens of cache row 0 with shapes fixed by (T, span): the verify pass
        of a recorded speculative step (`spec_graphs`). ids, columns (T,): the tokens and their
        positions, which are also the cache columns their keys and values go to; token i attends
        to columns ≤ columns[i] of the first `span`. Returns (T, D) before the final norm."""
        x = self.embed[ids][None]                                                 # (1, T, D)
        cos, sin = self._rope(columns)
        mask = _span_mask(columns, span, x.dtype)
        for i, b in enumerate(self.blocks):
            x = self._block(b, x, cos, sin, self._span_attention(cache.k_layers[i], cache.v_layers[i],
                                                                 columns, mask, span))
        return x[0]

    def span_mtp(self, k: int, hidden: torch.Tensor, ids: torch.Tensor, columns: torch.Tensor,
                 cache: KVCache, span: int) -> tuple[torch.Tensor, torch.Tensor]:
        """MTP layer k over indices `columns` (T,) of cache row 0, as `mtp` with shapes fixed by
        (T, span): hidden (1, T, D), ids (T,) the tokens x_{t+k+1} it reads at positions t+k+1.
        Returns (z (1, T, D), logits of the last index (1, V))."""
        b, T = self.mtp_blocks[k], ids.shape[0]
        x = torch.cat([normalize(hidden, self.eps), normalize(self.embed[ids][None], self.eps)], dim=-1)
        cos, sin = self._rope(columns + (k + 1))
        slot = len(self.blocks) + k
        z = self._block(b, torch.mm(x.view(T, -1), b.input_proj).view(1, T, -1), cos, sin,
                        self._span_attention(cache.k_layers[slot], cache.v_layers[slot], columns,
                                             _span_mask(columns, span, x.dtype), span))
        return z, torch.mm(normalize(z[0, -1:], self.eps), b.lm_head)

    @staticmethod
    def _span_attention(keys: torch.Tensor, values: torch.Tensor, columns: torch.Tensor,
                        mask: torch.Tensor, span: int):
        """attend() for the span passes: row 0's keys and values of T tokens written at `columns`,
        attention over the first `span` columns (keys, values: one layer's (batch, K, L, d))."""
        def attend(q, k, v):
            keys[0].index_copy_(1, columns, k[0].transpose(0, 1))                # (K, T, d)
            values[0].index_copy_(1, columns, v[0].transpose(0, 1))
            _, T, H, d = q.shape
            out = F.scaled_dot_product_attention(q.transpose(1, 2), keys[:1, :, :span], values[:1, :, :span],
                                                 attn_mask=mask, enable_gqa=H != keys.shape[1], scale=1.0)
            return out.transpose(1, 2).reshape(T, H * d)
        return attend

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """lm_head(norm(h)) for h (N, D) → (N, V)."""
        return torch.mm(normalize(h, self.eps), self.lm_head)

    def mtp(self, k: int, hidden: torch.Tensor, token_ids: torch.Tensor, start: int, window: CacheWindow):
        """MTP layer k over T indices: (z, logits of the last index), as `MTPLayer.forward` + lm_head.

        hidden (1, T, D): the previous depth's states; token_ids (1, T): the tokens it reads, at
        positions start .. start+T-1. Cache slot L + k.
        """
        b, T = self.mtp_blocks[k], token_ids.shape[1]
        x = torch.cat([normalize(hidden, self.eps), normalize(self.embed[token_ids], self.eps)], dim=-1)
        cos, sin = self._rope(slice(start, start + T))
        z = self._block(b, torch.mm(x.view(T, -1), b.input_proj).view(1, T, -1), cos, sin,
                        self._window_attention(window, len(self.blocks) + k))
        return z, torch.mm(normalize(z[0, -1:], self.eps), b.lm_head)


class ModuleDecoder:
    """FusedDecoder's three calls run through the model's own modules, for a model that is not plain.

    Whatever the modules compute (a LoRA layer's W·x + (α/r)·B·A·x, a hook, a replaced block),
    this computes too, at the unfused forward's cost: with LoRA r=16 on the toy model (CPU, one
    thread) `generate` ran 4.1× slower than fused at batch 1, 1.6× at batch 32. It reads the
    live modules at every step, so unlike a fused snapshot it sees weights changed during a run.
    """

    def __init__(self, model: MiMoForCausalLM):
        self.model = model

    def forward(self, input_ids: torch.Tensor, window: CacheWindow) -> torch.Tensor:
        """(B, T) new tokens → (B, T, D), the main stack's output before its final norm."""
        return self.model.model(input_ids, window.position_ids, window.attention_mask, window)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """lm_head(norm(h)) for h (N, D) → (N, V)."""
        return self.model.lm_head(self.model.model.norm(h))

    def mtp(self, k: int, hidden: torch.Tensor, token_ids: torch.Tensor, start: int, window: CacheWindow):
        """MTP layer k, as `FusedDecoder.mtp`: (z (1, T, D), logits of the last index (1, V))."""
        m = self.model.model
        positions = torch.arange(start, start + token_ids.shape[1], device=token_ids.device)[None]
        cos, sin = m.rope(positions, hidden.dtype)
        z, normed = m.mtp_layers[k](hidden, m.embed_tokens(token_ids), cos, sin, window.attention_mask,
                                    window)
        return z, self.model.lm_head(normed[0, -1:])


# model.py's own classes: a model built of these alone computes what FusedDecoder computes
_ARCHITECTURE = frozenset({MiMoForCausalLM, MiMoModel, DecoderLayer, MTPLayer, Attention, MLP, RMSNorm,
                           nn.Embedding, nn.Linear, nn.ModuleList})


def is_plain(model) -> bool:
    """True when every module is one of model.py's classes, with no hook and no forward of its own.

    peft's LoRA layers, a module replaced by another class, a forward hook, or a `forward`
    patched onto an instance (accelerate's offloading does the last two) all make `model(...)`
    compute something the fused copy does not.
    """
    return all(type(m) in _ARCHITECTURE and not m._forward_hooks and not m._forward_pre_hooks
               and "forward" not in vars(m) for m in model.modules())


def weights_signature(model) -> tuple:
    """What a fused copy of `model` is a function of; equal signatures, equal copies.

    Per parameter: its data_ptr (moves when it is replaced or moved by `.to()`), its version
    counter (counts in-place updates autograd sees: an optimiser step, `load_state_dict`,
    `p.add_(...)` under no_grad) and its fp32 sum. The sum is there for edits through `.data`
    (`p.data.copy_(x)`, peft's `merge_and_unload`), which bypass the version counter; it costs one
    read of the weights, as one batch-1 decoding step does: 0.27 ms at toy size on one CPU core
    (0.32 ms with `is_plain`; a decoding step takes 0.32 ms, a rebuild 2-4 ms).
    Also the config values the copy reads (stage 3 raises `rope_theta`). A `.data` edit that
    keeps a tensor's fp32 sum exactly (permuting its values, say) goes unseen.
    """
    c = model.config
    params = list(model.parameters())
    with torch.no_grad():
        sums = torch.stack([p.sum(dtype=torch.float32) for p in params]).tolist()
    # tensors made under inference_mode keep no version counter (they cannot be trained)
    return (c.rope_theta, c.rms_norm_eps, c.max_position_embeddings,
            *[(p.data_ptr(), None if p.is_inference() else p._version, s) for p, s in zip(params, sums)])


_fused: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()     # model → (signature, FusedDecoder)


def decoder_for(model) -> FusedDecoder | ModuleDecoder:
    """What a generation run decodes with: `model` as it is now, fused when its forward is plain.

    A plain model gets its FusedDecoder, kept per model (weakly: it does not keep the model alive)
    and rebuilt whenever `weights_signature` changed since it was built. Any other model, a peft
    wrapper included, gets a ModuleDecoder: folding LoRA (W + (α/r)·B·A) would mean mirroring
    peft's options (several adapters, disabled adapters, DoRA, rsLoRA, per-module ranks) and
    re-folding after every training step, while the model's own modules are right for all of them.

    Call it when a run starts, not every step. A fused run keeps its snapshot to the end: weights
    changed meanwhile (another thread training) apply from the next run. Its K/V cache already
    holds keys computed with the old weights, so switching mid-run would decode with neither
    model, and one snapshot per run makes every completion's log-probs one policy's. A snapshot
    taken while another thread is inside `optimizer.step()` may be half updated: start runs
    between steps, as `EngineRollout` does.
    """
    if hasattr(model, "get_base_model"):                  # peft's wrapper: the model inside,
        model = model.get_base_model()                     # its LoRA layers in place
    if not is_plain(model):
        _fused.pop(model, None)                            # a copy of what it no longer computes
        return ModuleDecoder(model)
    signature = weights_signature(model)
    built, decoder = _fused.get(model, (None, None))
    if built != signature:
        _fused.pop(model, None)                            # free the old copy (a run may still hold it)
        decoder = FusedDecoder(model)
        _fused[model] = signature, decoder
    return decoder
