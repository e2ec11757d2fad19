"""``MultiheadAttention``: PyTorch's layer, with its parameters, layouts and masks.

    head_h = Attention(Q W_q^h, K W_k^h, V W_v^h)       h = 1 .. num_heads, each of size E / num_heads
    MultiHead(Q, K, V) = Concat(head_1, ..., head_H) W_o       (Vaswani et al. 2017, section 3.2.2)

All heads' projections are one matrix, ``in_proj_weight`` (3E, E) = [W_q; W_k; W_v]
with ``in_proj_bias`` (3E,), and W_o is the Linear ``out_proj``: PyTorch's names,
so a ``torch.nn.MultiheadAttention`` state dict loads unchanged. When keys or
values have their own widths (``kdim``, ``vdim``) the three are separate:
``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight``.

Masks follow PyTorch's layer, which are the *opposite* of
``scaled_dot_product_attention``'s: here a boolean True means "ignore". The
one place the convention flips is ``_merge_masks``, which turns the layer's
masks into the functional op's (True = take part, or floats to add).

Two options PyTorch's layer does not have, so that the encoder-decoder
(``models/seq2seq.py``) uses this layer as it is: ``rotary`` (rotary
positions for each head's queries and keys) and ``record`` (keep the last
call's attention weights, for plots).
"""

import math

import numpy as np

from ..autograd import as_array, no_grad
from ..rng import get_rng
from ..validation import check_value
from .attention import attention_weights, causal_mask, scaled_dot_product_attention
from .linear import Linear, linear
from .module import Module, Parameter


def _xavier_uniform(rng, shape, dtype):
    """Glorot & Bengio 2010: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), PyTorch's init for these weights."""
    bound = math.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-bound, bound, shape).astype(dtype)


def _as_mask(mask):
    """A mask as an array: boolean or float (PyTorch's two kinds), anything else is an error."""
    mask = np.asarray(as_array(mask))
    if mask.dtype != np.bool_ and mask.dtype.kind != "f":
        raise TypeError(f"MultiheadAttention: masks must be boolean or float, got dtype {mask.dtype}")
    return mask


def _additive(mask, dtype):
    """A mask as numbers to add to the scores: boolean True (ignore) -> -inf, False -> 0; floats as they are."""
    if mask.dtype == np.bool_:
        return np.where(mask, -np.inf, 0.0).astype(dtype)
    return mask.astype(dtype, copy=False)


class MultiheadAttention(Module):
    """Multi-head attention, ``torch.nn.MultiheadAttention``'s twin.

    Inputs are (L, N, E) sequence-first, or (N, L, E) with ``batch_first=True``,
    or unbatched (L, E); key and value have length S. ``forward`` returns the
    output, shaped like the query, and the attention weights (N, L, S) averaged
    over heads ((N, num_heads, L, S) with ``average_attn_weights=False``), or
    None with ``need_weights=False`` (then the fused attention op is used).

    Masks, PyTorch's convention: ``key_padding_mask`` (N, S), True marks padding
    keys to ignore; ``attn_mask`` (L, S) or (N * num_heads, L, S), boolean
    True = may *not* attend; either may instead be float, added to the scores.
    ``is_causal=True`` without an ``attn_mask`` builds the causal mask (PyTorch
    requires the mask and treats the flag as a hint; with a mask given, the
    mask is used as is). A query left with no key gets zeros, where PyTorch
    gives NaN.

    Beyond PyTorch: ``rotary`` (a ``RotaryEmbedding``) rotates each head's
    queries and keys by their positions before the scores (Su et al. 2021).
    With ``record = True`` each call also keeps, in ``last_weights``, the
    weights that ``need_weights=True`` would return (an array, before dropout,
    outside the graph); the output does not change.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False, kdim=None, vdim=None,
                 dtype=np.float32):
        super().__init__()
        embed_dim = check_value("MultiheadAttention: embed_dim", embed_dim, int, "[1, inf)")
        num_heads = check_value("MultiheadAttention: num_heads", num_heads, int, "[1, inf)")
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"MultiheadAttention: embed_dim={embed_dim} must be a positive multiple of num_heads={num_heads}"
            )
        dropout = check_value("MultiheadAttention: dropout", dropout, float, "[0, 1]")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else check_value("MultiheadAttention: kdim", kdim, int, "[1, inf)")
        self.vdim = embed_dim if vdim is None else check_value("MultiheadAttention: vdim", vdim, int, "[1, inf)")
        self.dropout, self.batch_first = dropout, batch_first
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        rng = get_rng()
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(_xavier_uniform(rng, (3 * embed_dim, embed_dim), dtype))
        else:
            self.q_proj_weight = Parameter(_xavier_uniform(rng, (embed_dim, embed_dim), dtype))
            self.k_proj_weight = Parameter(_xavier_uniform(rng, (embed_dim, self.kdim), dtype))
            self.v_proj_weight = Parameter(_xavier_uniform(rng, (embed_dim, self.vdim), dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, dtype=dtype)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if bias:
            self.out_proj.bias.data[...] = 0
        self.record, self.last_weights = False, None

    def _project(self, query, key, value):
        """Q W_q^T + b_q, K W_k^T + b_k, V W_v^T + b_v, each (N, ., E); one matmul for self-attention."""
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E : 2 * E], b[2 * E :])
        if not self._qkv_same_embed_dim:
            return (linear(query, self.q_proj_weight, bq), linear(key, self.k_proj_weight, bk),
                    linear(value, self.v_proj_weight, bv))
        if query is key and key is value:
            return tuple(linear(query, self.in_proj_weight, b).split(E, axis=-1))  # 3 x (N, L, E)
        w = self.in_proj_weight
        return linear(query, w[:E], bq), linear(key, w[E : 2 * E], bk), linear(value, w[2 * E :], bv)

    def _check(self, query, key, value):
        name, E = "MultiheadAttention", self.embed_dim
        if query.ndim not in (2, 3) or query.shape[-1] != E:
            raise ValueError(f"{name}: query must be (L, N, {E}), (N, L, {E}) or (L, {E}), got shape {query.shape}")
        batch_axis = () if query.ndim == 2 else ((0,) if self.batch_first else (1,))
        if (
            key.ndim != query.ndim or value.ndim != query.ndim or key.shape[-1] != self.kdim
            or value.shape[-1] != self.vdim or key.shape[:-1] != value.shape[:-1]
            or any(key.shape[a] != query.shape[a] for a in batch_axis)
        ):
            raise ValueError(
                f"{name}: key must be shaped like query {query.shape} but with width kdim={self.kdim}, value the "
                f"same with vdim={self.vdim}, both of one length S; got key {key.shape} and value {value.shape}"
            )

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False, rotary=None):
        self._check(query, key, value)
        unbatched = query.ndim == 2
        if unbatched:  # one sequence: a batch of one inside, taken off again at the end
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:  # work batch-first inside: (L, N, E) -> (N, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        N, L, E = query.shape
        S, H, hd = key.shape[1], self.num_heads, self.head_dim
        mask = self._merge_masks(key_padding_mask, attn_mask, is_causal, N, L, S, unbatched, query.dtype)

        q, k, v = self._project(query, key, value)  # (N, L, E), (N, S, E), (N, S, E)
        q = q.reshape(N, L, H, hd).transpose(1, 2)  # (N, H, L, hd)
        k = k.reshape(N, S, H, hd).transpose(1, 2)  # (N, H, S, hd)
        v = v.reshape(N, S, H, hd).transpose(1, 2)  # (N, H, S, hd)
        if rotary is not None:
            q, k = rotary(q), rotary(k)  # (N, H, L, hd), (N, H, S, hd): positions 0.. of each sequence
        if self.record:
            with no_grad():
                recorded = attention_weights(q, k, mask).data  # (N, H, L, S)
            recorded = recorded.mean(axis=1) if average_attn_weights else recorded  # (N, L, S) or (N, H, L, S)
            self.last_weights = recorded[0] if unbatched else recorded
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:  # the weights are wanted too: compose the attention from primitives, as PyTorch does
            weights = attention_weights(q, k, mask, dropout_p=p)  # (N, H, L, S)
            out = weights @ v  # (N, H, L, hd)
            if average_attn_weights:
                weights = weights.mean(axis=1)  # (N, L, S)
        else:
            out = scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (N, H, L, hd)
        out = self.out_proj(out.transpose(1, 2).reshape(N, L, E))  # (N, L, E): heads side by side, mixed

        if unbatched:
            return out.squeeze(0), None if weights is None else weights.squeeze(0)
        if not self.batch_first:
            out = out.transpose(0, 1)  # (L, N, E)
        return out, weights

    def _merge_masks(self, key_padding_mask, attn_mask, is_causal, N, L, S, unbatched, dtype):
        """PyTorch's masks (True = ignore) -> one ``attn_mask`` for the functional op, broadcastable to (N, H, L, S).

        Boolean masks give a boolean mask, True = take part (the same numbers as
        adding -inf, and cheaper); if either mask is float, both become numbers
        to add (-inf = ignore). None when there is no mask.
        """
        name, H = "MultiheadAttention", self.num_heads
        if is_causal and attn_mask is None:
            attn_mask = ~causal_mask(L, S)  # True = may not attend
        masks = []
        if attn_mask is not None:
            mask = _as_mask(attn_mask)
            per_head = (H, L, S) if unbatched else (N * H, L, S)
            if mask.shape == per_head:
                mask = mask.reshape(N, H, L, S)  # PyTorch orders the first axis batch-major: n * H + h
            elif mask.shape != (L, S):
                raise ValueError(
                    f"{name}: attn_mask must have shape (L, S) = {(L, S)} or "
                    f"({'num_heads' if unbatched else 'N * num_heads'}, L, S) = {per_head}, got {mask.shape}"
                )
            masks.append(mask)
        if key_padding_mask is not None:
            padding = _as_mask(key_padding_mask)
            expected = (S,) if unbatched else (N, S)
            if padding.shape != expected:
                raise ValueError(
                    f"{name}: key_padding_mask must have shape {'(S,)' if unbatched else '(N, S)'} = {expected}, "
                    f"got {padding.shape}"
                )
            masks.append(padding.reshape(N, 1, 1, S))  # (N, 1, 1, S): the same keys hidden for every head and query
        if not masks:
            return None
        if all(mask.dtype == np.bool_ for mask in masks):
            ignore = masks[0] if len(masks) == 1 else masks[0] | masks[1]
            return ~ignore  # True = take part
        additive = [_additive(mask, dtype) for mask in masks]
        return additive[0] if len(additive) == 1 else additive[0] + additive[1]

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"
