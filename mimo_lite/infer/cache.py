"""A preallocated KV cache: prefill once, then decode token by token without reallocating.

Attention at step t needs the keys and values of every earlier token. Recomputing them means a
full forward over the whole prefix for each new token (O(T²) work for T tokens); keeping them
costs memory instead:

    bytes per token = 2 (K and V) × layers × KV heads × head_dim × bytes per number

Layout: one tensor for K and one for V, each (layers, batch, KV heads, max_length, head_dim).
Row b holds its own sequence in columns 0 .. length_b - 1, so rows of different lengths need no
left padding, and rolling back rejected speculative tokens is nothing more than lowering a length
(the stale columns are masked, then overwritten). The main layers use slots 0..L-1 and the MTP
layers slots L.., as in `mimo_lite/model.py`.

A forward pass sees the cache through a `CacheWindow` (which rows, from which column, how many
new tokens): the model calls `window.update(k, v, layer_idx)` and `window.get_seq_length()`.
"""

from __future__ import annotations

import torch

from ..config import MiMoConfig


def kv_bytes_per_token(config: MiMoConfig, bytes_per_number: int, include_mtp: bool = True) -> int:
    """2 (K, V) × layers × KV heads × head_dim × bytes: what one cached token costs."""
    layers = config.num_hidden_layers + (config.num_nextn_predict_layers if include_mtp else 0)
    return 2 * layers * config.num_key_value_heads * config.head_dim * bytes_per_number


class KVCache:
    """Preallocated K and V, (layers, batch, KV heads, max_length, head_dim) each."""

    def __init__(self, num_layers: int, batch_size: int, max_length: int, num_kv_heads: int,
                 head_dim: int, *, dtype: torch.dtype, device: torch.device | str):
        shape = (num_layers, batch_size, num_kv_heads, max_length, head_dim)
        # zeros, not empty: a masked column still enters q·kᵀ, and a NaN there would leak through
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.k_layers, self.v_layers = self.k.unbind(0), self.v.unbind(0)   # per-layer views
        self.max_length = max_length

    @classmethod
    def for_model(cls, model, batch_size: int, max_length: int, include_mtp: bool = True) -> "KVCache":
        """A cache sized for `model`: main layers, plus its MTP layers when `include_mtp`."""
        c = model.config
        layers = c.num_hidden_layers + (c.num_nextn_predict_layers if include_mtp else 0)
        weight = model.lm_head.weight
        return cls(layers, batch_size, max_length, c.num_key_value_heads, c.head_dim,
                   dtype=weight.dtype, device=weight.device)

    def window(self, start: int | torch.Tensor, num_new: int, rows: slice = slice(None),
               span: int | None = None) -> "CacheWindow":
        """The view one forward pass writes through: `num_new` tokens per row from column `start`.

        `start` is an int when all rows hold the same length, or a (B,) tensor of per-row lengths;
        then `span` (the longest row after the write) sizes the keys every row attends over.
        """
        return CacheWindow(self, rows, start, num_new, span)

    def move_row(self, src: int, dst: int, length: int) -> None:
        """Copy row `src`'s first `length` columns into row `dst` (compacting the active rows)."""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]

    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2


class CacheWindow:
    """Rows `rows` of a KVCache, each writing `num_new` entries from column `start`.

    With an int `start` (every row equally long) the keys are the plain slice [0, start+num_new);
    with a tensor `start` each row has its own positions. `position_ids` and `attention_mask`
    (None when plain causal attention is right) describe the new tokens: pass both to the model.
    """

    def __init__(self, cache: KVCache, rows: slice, start, num_new: int, span: int | None):
        self.cache, self.rows, self.start, self.num_new = cache, rows, start, num_new
        self.uniform = isinstance(start, int)
        self.span = start + num_new if self.uniform else span
        if self.span is None:
            raise ValueError("A window with per-row starts needs `span` (longest row + num_new).")
        if self.span > cache.max_length:
            raise ValueError(f"The KV cache holds {cache.max_length} tokens per row but this step "
                             f"needs {self.span}: allocate a longer cache (max_length).")
        self.attention_mask = None
        self._additive = None
        device = cache.k.device
        if not self.uniform:
            self._position_ids = start[:, None] + torch.arange(num_new, device=device)   # (B, T)
            # row b's query t (position start_b + t) sees its own columns 0 .. start_b + t
            columns = torch.arange(self.span, device=device)
            self.attention_mask = columns <= self.position_ids[:, None, :, None]  # (B, 1, T, S)
            self._row_index = torch.arange(start.shape[0], device=device)[:, None]
            return
        self._position_ids = None
        if start > 0 and num_new > 1:
            # several new tokens after a cached prefix: query t sees columns 0 .. start + t
            columns = torch.arange(self.span, device=device)
            self.attention_mask = (columns <= self.position_ids[0, :, None])[None, None]  # (1, 1, T, S)
        # else: one new token sees every column, or an empty prefix needs plain causal attention

    @property
    def position_ids(self) -> torch.Tensor:
        """Positions of the new tokens, (B, T) per row or (1, T) when every row is equally long."""
        if self._position_ids is None:
            self._position_ids = torch.arange(self.start, self.span, device=self.cache.k.device)[None]
        return self._position_ids

    def additive_mask(self, dtype: torch.dtype) -> torch.Tensor | None:
        """`attention_mask` as 0 / -inf to add to the scores, built once per window (every layer
        of a pass shares it; SDPA would otherwise convert the boolean mask in each layer)."""
        if self.attention_mask is None:
            return None
        if self._additive is None or self._additive.dtype != dtype:
            self._additive = torch.zeros(self.attention_mask.shape, dtype=dtype,
                                         device=self.attention_mask.device
                                         ).masked_fill_(~self.attention_mask, float("-inf"))
        return self._additive

    def get_seq_length(self) -> int:
        return self.span - self.num_new

    def update(self, k: torch.Tensor, v: torch.Tensor, layer_idx: int):
        """Write the new k, v (B, K, T, d) and return all keys and values to attend, (B, K, S, d)."""
        keys, values = self.cache.k_layers[layer_idx][self.rows], self.cache.v_layers[layer_idx][self.rows]
        if self.uniform:
            keys.narrow(2, self.start, self.num_new).copy_(k)
            values.narrow(2, self.start, self.num_new).copy_(v)
        else:
            keys[self._row_index, :, self.position_ids] = k.transpose(1, 2)     # (B, T, K, d)
            values[self._row_index, :, self.position_ids] = v.transpose(1, 2)
        return keys.narrow(2, 0, self.span), values.narrow(2, 0, self.span)
