"""GPT's attention layer: multi-head causal self-attention over one sequence, and the KV cache of generation.

    q, k, v = split(c_attn(x))                      (B, T, C) each, then (B, nh, T, hs) per head
    y_h = softmax(q_h k_h^T / sqrt(hs) + causal mask) v_h        scaled_dot_product_attention
    y = c_proj(concat(y_1, ..., y_nh))             (B, T, C)

Masks: ``key_padding_mask`` (B, T) is True at padding, the keys to ignore
(PyTorch's ``key_padding_mask`` convention); causality comes from the layer's
``causal`` flag. Inside, both become one ``attn_mask`` in the functional op's
convention (True = take part).
"""

import numpy as np

from ..autograd import Tensor, as_array, no_grad
from ..validation import check_value
from .attention import attention_weights, causal_mask, scaled_dot_product_attention
from .dropout import Dropout
from .linear import Linear
from .module import Module


class KVCache:
    """The keys and values one attention layer has computed so far, for generation.

    Generating token t+1 needs the keys and values of positions 0..t, which
    did not change when token t was added: keeping them means each new token
    costs one position instead of t. Arrays only, so use it under ``no_grad``.
    """

    def __init__(self):
        self.k = self.v = None  # (B, nh, length, hs) each

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k, v):
        """Add the new positions' keys and values (B, nh, T, hs); return all of them as tensors."""
        k, v = as_array(k), as_array(v)
        self.k = k if self.k is None else np.concatenate([self.k, k], axis=2)
        self.v = v if self.v is None else np.concatenate([self.v, v], axis=2)
        return Tensor(self.k), Tensor(self.v)


class CausalSelfAttention(Module):
    """GPT-style multi-head self-attention over x of shape (B, T, C) (Radford et al. 2019; nanoGPT's layout).

    One Linear ``c_attn`` makes queries, keys and values together (C -> 3C,
    split in that order), each split into ``n_head`` heads of size C / n_head;
    every head runs scaled dot-product attention; ``c_proj`` mixes the heads.
    ``attn_dropout`` acts on the attention probabilities, ``resid_dropout`` on
    the output. ``causal=False`` makes it a bidirectional (encoder) layer;
    ``key_padding_mask`` (B, T), True = padding, hides keys in either case.

    Recording, for looking inside: with ``record = True`` every call also keeps
    each head's attention probabilities (before dropout, outside the graph) in
    ``last_weights``, an array (B, nh, T, T_keys). The output does not change.
    """

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, causal=True):
        super().__init__()
        n_embd = check_value("CausalSelfAttention: n_embd", n_embd, int, "[1, inf)")
        n_head = check_value("CausalSelfAttention: n_head", n_head, int, "[1, inf)")
        if n_embd % n_head != 0:
            raise ValueError(f"CausalSelfAttention: n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_embd, self.n_head, self.causal = n_embd, n_head, causal
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = Linear(n_embd, n_embd, bias=bias)
        self.attn_dropout = Dropout(dropout)  # its p is handed to the fused attention op
        self.resid_dropout = Dropout(dropout)
        self.record, self.last_weights = False, None

    def forward(self, x, key_padding_mask=None, cache=None):
        """``cache`` (a KVCache, for generation) holds the keys and values of earlier
        positions: the new positions attend to those and to themselves, causally."""
        if x.ndim != 3 or x.shape[-1] != self.n_embd:
            raise ValueError(f"CausalSelfAttention: expected input (B, T, {self.n_embd}), got shape {x.shape}")
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, axis=2)  # 3 x (B, T, C)
        q = q.reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        keep = None  # True = take part, the functional op's convention
        if cache is not None:
            if key_padding_mask is not None:
                raise ValueError("CausalSelfAttention: a KV cache cannot be combined with key_padding_mask")
            past = cache.length
            k, v = cache.append(k, v)  # (B, nh, past + T, hs)
            if self.causal and T > 1:  # new query i sits at position past + i: it sees keys j <= past + i
                keep = np.arange(past + T)[None, :] <= np.arange(past, past + T)[:, None]  # (T, past + T)
        elif key_padding_mask is not None:
            padding = np.asarray(as_array(key_padding_mask), dtype=bool)
            if padding.shape != (B, T):
                raise ValueError(
                    f"CausalSelfAttention: key_padding_mask must have shape (B, T) = {(B, T)}, got {padding.shape}"
                )
            keep = ~padding[:, None, None, :]  # (B, 1, 1, T)
            if self.causal:
                keep = keep & causal_mask(T)  # (B, 1, T, T)
        is_causal = self.causal and keep is None and cache is None
        if self.record:
            with no_grad():
                self.last_weights = attention_weights(q, k, keep, is_causal).data  # (B, nh, T, T_keys)
        p = self.attn_dropout.p if self.training else 0.0
        y = scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p, is_causal=is_causal)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_dropout(self.c_proj(y))

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}, causal={self.causal}"
