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
tokens are the model's. Preparing costs a copy of the weights, so `FusedDecoder.of(model)`
keeps one per model and rebuilds it when the weights change: an optimiser step or
`load_state_dict` bumps the parameters' version counters, `.to()` changes their storage.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

from .cache import CacheWindow


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


def normalize(x: torch.Tensor, eps: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x / sqrt(mean(x²) + eps) in fp32, returned in x's dtype: `RMSNorm` before its weight.

    mean(x²) + eps is written sum(x·x) / D + eps with D and eps held as 0-dim fp32 tensors: the
    arithmetic of ATen's `mean` and of a Python-float `eps`, but a Python number in an operation
    costs three extra dispatches (wrap, convert, copy), and `mean` dispatches to four.
    """
    y = x.float()
    epsilon, dim = eps
    y = y * torch.rsqrt((y * y).sum(-1, keepdim=True) / dim + epsilon)
    return y if x.dtype == torch.float32 else y.to(x.dtype)


class FusedDecoder:
    """The main stack (and MTP layers) of `model` for cached generation.

        fused = FusedDecoder.of(model)
        h = fused.forward(ids, window)          # (B, T, D), as model.model(ids, ..., cache=window)
        logits = fused.logits(h[:, -1])         # as model.lm_head(model.model.norm(...))
    """

    _built: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def __init__(self, model):
        self._model = weakref.ref(model)    # the cache below must not keep the model alive
        self._signature: list | None = None
        self.refresh()

    @classmethod
    def of(cls, model) -> "FusedDecoder":
        """The decoder prepared for `model`, built on first use and kept while the model lives.

        Preparing costs a copy of the weights (milliseconds at toy size), too much to repeat for
        every short `generate` call; `sync` keeps it current.
        """
        decoder = cls._built.get(model)
        if decoder is None:
            decoder = cls._built[model] = cls(model)
        elif decoder._signature != decoder._current():
            decoder.refresh()
        return decoder

    def _current(self) -> list:
        """Changes when a parameter is updated in place, replaced, or moved to another device or dtype."""
        return [(p.data_ptr(), p.dtype, *self._version(p)) for p in self._model().parameters()]

    @staticmethod
    def _version(p: torch.Tensor) -> tuple[int, ...]:
        # tensors made under inference_mode keep no version counter (and cannot be trained)
        return () if p.is_inference() else (p._version,)

    def refresh(self) -> None:
        """(Re)build the fused weights from the model's current parameters."""
        model = self._model()
        m, c = model.model, model.config
        with torch.no_grad():
            self.embed = m.embed_tokens.weight.detach()
            # (eps, D) as 0-dim fp32 tensors, see normalize
            self.eps = tuple(torch.tensor(v, dtype=torch.float32, device=self.embed.device)
                             for v in (c.rms_norm_eps, float(c.hidden_size)))
            self.blocks = [_Block(layer) for layer in m.layers]
            self.mtp_blocks = [_MTP(layer, model.lm_head.weight) for layer in m.mtp_layers]
            self.lm_head = _t(model.lm_head.weight, m.norm.weight)
            positions = torch.arange(c.max_position_embeddings, device=self.embed.device)
            cos, sin = m.rope(positions[None], self.embed.dtype)                # (1, S, d)
            half = c.head_dim // 2
            self.cos = cos[0, :, None]                                          # (S, 1, d)
            self.sin = torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)[:, None]  # signs of rotate_half
        trainable = [p for p in model.parameters() if not p.is_inference()]
        # sync() watches the first and last few: an optimiser step or load_state_dict bumps them all
        self._params = trainable[:2] + trainable[-2:]
        self._versions = [p._version for p in self._params]
        self._signature = self._current()

    def sync(self) -> None:
        """Rebuild if the weights were updated in place since the last build; cheap, for every step.

        It watches four parameters (an optimiser step or `load_state_dict` updates every one);
        `FusedDecoder.of`, at the start of each generation run, checks them all.
        """
        if [p._version for p in self._params] != self._versions:
            self.refresh()

    def _block(self, b: _Block, x: torch.Tensor, cos, sin, window: CacheWindow, slot: int):
        """x (B, T, D) → (B, T, D); every matmul sees the (B·T, D) rows."""
        B, T, D = x.shape
        H, K, d = b.H, b.K, b.d
        x = x.view(B * T, D)
        y = normalize(x, self.eps)
        qkv = (torch.mm(y, b.qkv) if b.qkv_bias is None else torch.addmm(b.qkv_bias, y, b.qkv))
        qkv = qkv.view(B, T, H + 2 * K, d)
        qk = qkv[:, :, :H + K]
        qk = qk * cos + qk.roll(d // 2, -1) * sin                                  # RoPE on q and k
        k, v = window.update(qk[:, :, H:].transpose(1, 2), qkv[:, :, H + K:].transpose(1, 2), slot)
        mask = window.additive_mask(qk.dtype)                           # k, v: (B, K, S, d)
        if T == 1 and x.device.type == "cpu":
            # one query per row: two batched matmuls beat SDPA's set-up; query head h reads KV
            # head h // (H/K), as enable_gqa does
            S = k.shape[2]
            scores = torch.bmm(qk[:, 0, :H].reshape(B * K, H // K, d),
                               k.reshape(B * K, S, d).transpose(1, 2))            # (B·K, G, S)
            if mask is not None:
                scores = (scores.view(B, K, H // K, S) + mask).view(B * K, H // K, S)
            out = torch.bmm(scores.softmax(-1), v.reshape(B * K, S, d)).view(B, H * d)
        else:
            out = F.scaled_dot_product_attention(
                qk[:, :, :H].transpose(1, 2), k, v, attn_mask=mask, is_causal=mask is None and T > 1,
                enable_gqa=H != K, scale=1.0).transpose(1, 2).reshape(B * T, H * d)
        x = x + torch.mm(out, b.o)
        gate_up = torch.mm(normalize(x, self.eps), b.gate_up)
        x = x + torch.mm(F.silu(gate_up[:, :b.ffn]) * gate_up[:, b.ffn:], b.down)
        return x.view(B, T, D)

    def _rope(self, positions: slice | torch.Tensor):
        """cos, sin for a range of positions, (T, 1, d), or per-row positions (B, T): (B, T, 1, d)."""
        return self.cos[positions], self.sin[positions]

    def forward(self, input_ids: torch.Tensor, window: CacheWindow) -> torch.Tensor:
        """Main stack over new tokens (B, T) written through `window`: (B, T, D) before the final norm."""
        x = self.embed[input_ids]
        cos, sin = self._rope(slice(window.start, window.span) if window.uniform else window.position_ids)
        for i, b in enumerate(self.blocks):
            x = self._block(b, x, cos, sin, window, i)
        return x

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
        z = self._block(b, torch.mm(x.view(T, -1), b.input_proj).view(1, T, -1), cos, sin, window,
                        len(self.blocks) + k)
        return z, torch.mm(normalize(z[0, -1:], self.eps), b.lm_head)
