"""GPT's attention layer: multi-head causal self-attention over one sequence, and the KV cache of generation.

    q, k, v = split(c_attn(x))                      (B, T, C) each, then (B, nh, T, hs) per head
    y_h = softmax(q_h k_h^T / sqrt(hs) + causal mask) v_h        scaled_dot_product_attention
    y = c_proj(concat(y_1, ..., y_nh))             (B, T, C)

Masks: ``key_padding_mask`` (B, T) is True at padding, the keys to ignore
(PyTorch's ``key_padding_mask`` convention); causality comes from the layer's
``causal`` flag. Inside, both become one ``attn_mask`` in the functional op's
convention (True = take part).

``forward`` builds the autograd graph; ``infer`` does the same arithmetic on
plain arrays, for generation, where nothing is ever differentiated.
"""

import math

import numpy as np

from .. import kernels
from ..autograd import Tensor, as_array, no_grad
from ..validation import check_value
from .attention import ScaledDotProductAttention, attention_weights, causal_mask, scaled_dot_product_attention
from .dropout import Dropout
from .linear import Linear
from .module import Module


class KVCache:
    """The keys and values one attention layer has computed so far, for generation.

    Generating token t+1 needs the keys and values of positions 0..t, which
    did not change when token t was added: keeping them means each new token
    costs one position instead of t. Arrays only, so use it under ``no_grad``
    (or through the layers' ``infer``, which never builds a graph).

    The arrays have room for more positions than they hold, and each append writes
    into them in place. ``capacity`` (generation passes the model's block_size, the
    most a cache can ever hold) gives all the room at the first append; without
    it the room doubles when full, so that appending n positions one at a time
    copies O(n) numbers in all. Concatenating per token copied the whole cache
    each time (0.5 ms a token at a full 256-position context of config B's 6
    layers and width 384, measured).
    """

    def __init__(self, capacity=None):
        self.capacity = check_value("KVCache: capacity", capacity, int, "[1, inf)", optional=True)
        self.length = 0  # positions held
        self._k = self._v = None  # (B, nh, room, hs) each; the first ``length`` positions are filled

    @property
    def k(self):
        """The keys held, (B, nh, length, hs); None before the first ``append``."""
        return None if self._k is None else self._k[:, :, : self.length]

    @property
    def v(self):
        """The values held, (B, nh, length, hs); None before the first ``append``."""
        return None if self._v is None else self._v[:, :, : self.length]

    def append(self, k, v):
        """Add the new positions' keys and values (B, nh, T, hs); return all of them, (B, nh, length, hs) arrays."""
        k, v = as_array(k), as_array(v)
        end = self.length + k.shape[2]
        if self._k is None or end > self._k.shape[2]:  # full: move into arrays with twice the room
            room = max(end, 2 * self.length, self.capacity or 0)
            self._k, self._v = self._with_room(self._k, k, room), self._with_room(self._v, v, room)
        self._k[:, :, self.length : end] = k
        self._v[:, :, self.length : end] = v
        self.length = end
        return self.k, self.v

    def _with_room(self, held, new, room):
        """A (B, nh, room, hs) array of ``new``'s dtype starting with the positions ``held`` holds (None: none)."""
        B, nh, _, hs = new.shape
        grown = np.empty((B, nh, room, hs), dtype=new.dtype)
        if held is not None:
            grown[:, :, : self.length] = held[:, :, : self.length]
        return grown


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
        B, T, C, nh, hs = self._sizes(x)
        q, k, v = self.c_attn(x).split(self.n_embd, axis=2)  # 3 x (B, T, C)
        q = q.reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        keep, is_causal = self._mask(B, T, key_padding_mask, cache)
        if cache is not None:
            k, v = (Tensor(a) for a in cache.append(k, v))  # (B, nh, past + T, hs)
        if self.record:
            with no_grad():
                self.last_weights = attention_weights(q, k, keep, is_causal).data  # (B, nh, T, T_keys)
        p = self.attn_dropout.p if self.training else 0.0
        y = scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p, is_causal=is_causal)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_dropout(self.c_proj(y))

    def infer(self, x, cache=None):
        """``forward``'s arithmetic on arrays, outside autograd and without dropout: generation's inference path.

            q, k, v = split(x W_attn^T + b_attn)             (B, T, C) each, then (B, nh, T, hs) per head
            y_h = softmax(q_h k_h^T / sqrt(hs) + mask) v_h    k, v: the cache's earlier positions, then these
            out = concat(y_1, ..., y_nh) W_proj^T + b_proj   (B, T, C)

        No graph node is made and nothing is kept for a backward pass; the numbers
        are forward's, bit for bit (the same operations in the same order): causal
        attention over more than one block row of queries takes the fused op's
        block rows (``kernels.causal_attention_forward``), as forward does.
        """
        B, T, C, nh, hs = self._sizes(x)
        qkv = self.c_attn.infer(x).reshape(B, T, 3, nh, hs)  # (B, T, 3C) -> q, k, v of each head, no copy
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs), views
        keep, is_causal = self._mask(B, T, None, cache)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, nh, S, hs), S = past + T: the earlier positions' keys and values too
        scale = q.dtype.type(1 / math.sqrt(hs))
        if self.record:  # for looking inside: the probabilities, computed apart; the output does not change
            self.last_weights, _ = kernels.masked_softmax((q * scale) @ k.swapaxes(-1, -2), keep, is_causal)
        if ScaledDotProductAttention.skips_masked_half(q, keep, is_causal, 0.0):  # as forward's fused op does
            y, _ = kernels.causal_attention_forward(q, k, v, scale)  # (B, nh, T, hs): block rows of queries
        else:
            scores = (q * scale) @ k.swapaxes(-1, -2)  # (B, nh, T, S)
            p, _ = kernels.masked_softmax(scores, keep, is_causal)  # (B, nh, T, S): each row sums to 1 over its keys
            y = p @ v  # (B, nh, T, hs)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, T, C): heads side by side again
        return self.c_proj.infer(y)

    def _sizes(self, x):
        """B, T, C of the input, and the number and size of the heads."""
        if x.ndim != 3 or x.shape[-1] != self.n_embd:
            raise ValueError(f"CausalSelfAttention: expected input (B, T, {self.n_embd}), got shape {x.shape}")
        B, T, C = x.shape
        return B, T, C, self.n_head, C // self.n_head

    def _mask(self, B, T, key_padding_mask, cache):
        """(keep, is_causal) for T new queries, in the functional op's convention (keep: True = take part, or None).

        With a cache, new query i sits at position past + i and sees keys j <= past + i; read before
        the new positions are appended. An empty cache is the uncached case (keys j <= i): the
        ``is_causal`` flag rather than a mask array, so a (re)filled cache gives the uncached numbers
        and the fused softmax skips the masked keys instead of reading a mask (measured: 4 % of
        generating at config A, when ``generate`` still refilled the cache for every token once the
        context was full)."""
        if cache is not None:
            if key_padding_mask is not None:
                raise ValueError("CausalSelfAttention: a KV cache cannot be combined with key_padding_mask")
            past = cache.length
            if self.causal and T > 1 and past > 0:
                return np.arange(past + T)[None, :] <= np.arange(past, past + T)[:, None], False  # (T, past + T)
            return None, self.causal and T > 1  # one new query sees every key so far
        if key_padding_mask is None:
            return None, self.causal
        padding = np.asarray(as_array(key_padding_mask), dtype=bool)
        if padding.shape != (B, T):
            raise ValueError(
                f"CausalSelfAttention: key_padding_mask must have shape (B, T) = {(B, T)}, got {padding.shape}"
            )
        keep = ~padding[:, None, None, :]  # (B, 1, 1, T)
        return (keep & causal_mask(T) if self.causal else keep), False  # (B, 1, T, T) or (B, 1, 1, T)

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}, causal={self.causal}"
