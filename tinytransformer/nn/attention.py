"""Scaled dot-product attention (Vaswani et al. 2017), fused and composed, and the layers built on it.

For queries Q (..., L, E), keys K (..., S, E) and values V (..., S, Ev):

    S = Q K^T * scale + M          scores, (..., L, S); scale = 1/sqrt(E) by default
    P = softmax(S)                 over the keys, each row sums to 1
    O = P V                        (..., L, Ev)

M masks what a query may not see: a boolean ``attn_mask`` (True = takes part,
PyTorch's ``scaled_dot_product_attention`` convention) puts -inf on the
forbidden scores, a float one is added to the scores, and ``is_causal=True``
forbids key j for query i when j > i. Masks broadcast over batch and heads.

A query whose keys are *all* masked has no distribution to attend with;
PyTorch returns NaN for that row, this library returns a row of zeros (and
zero gradient), so a fully padded sequence cannot poison a batch.

The same computation is written twice: ``scaled_dot_product_attention`` is one
``Function`` with its backward derived by hand (fast, little memory: the graph
keeps Q, K, V and one number per query row), and
``scaled_dot_product_attention_composed`` chains autograd primitives (matmul,
masked_fill, softmax), whose backward autograd derives. The tests hold the two, and PyTorch, to each other.
"""

import math

import numpy as np

from .. import kernels
from ..autograd import Function, Tensor, unbroadcast
from ..kernels.attention_softmax import broadcasts_to
from ..random import get_rng
from .dropout import Dropout, dropout
from .linear import Linear
from .module import Module


def causal_mask(n_queries, n_keys=None):
    """Boolean (L, S) mask, True where query i may attend to key j, i.e. j <= i (top-left aligned)."""
    return np.tri(n_queries, n_queries if n_keys is None else n_keys, dtype=bool)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _check_attention(name, query, key, value, attn_mask, is_causal, dropout_p):
    """Validate shapes and options; return the scores' shape (..., L, S)."""
    q, k, v = query.shape, key.shape, value.shape
    if min(len(q), len(k), len(v)) < 2:
        raise ValueError(f"{name}: query, key and value need at least 2 axes (..., seq, dim), got {q}, {k}, {v}")
    if q[-1] != k[-1]:
        raise ValueError(f"{name}: query has embedding size {q[-1]} (shape {q}) but key has {k[-1]} (shape {k})")
    if k[-2] != v[-2]:
        raise ValueError(f"{name}: key and value need the same sequence length, got key {k} and value {v}")
    try:
        batch = np.broadcast_shapes(q[:-2], k[:-2], v[:-2])
    except ValueError:
        raise ValueError(f"{name}: batch axes of query {q}, key {k} and value {v} do not broadcast") from None
    scores = batch + (q[-2], k[-2])
    if attn_mask is not None:
        if is_causal:
            raise ValueError(f"{name}: pass either attn_mask or is_causal=True, not both")
        mask = np.asarray(_raw(attn_mask))
        if mask.dtype != np.bool_ and mask.dtype.kind != "f":
            raise TypeError(f"{name}: attn_mask must be boolean (True = take part) or float (added), got {mask.dtype}")
        if not broadcasts_to(mask.shape, scores):
            raise ValueError(
                f"{name}: attn_mask of shape {mask.shape} does not broadcast to the scores' shape "
                f"(..., L, S) = {scores}"
            )
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{name}: dropout_p must be in [0, 1], got {dropout_p}")
    return scores


class ScaledDotProductAttention(Function):
    """O = dropout(softmax(Q K^T * scale + M)) V, forward and backward in one op.

    Write S for the masked scores, P = softmax(S) row by row, D for the dropout
    multiplier (1 everywhere without dropout) and O = (P * D) V. Given dO:

        dV = (P * D)^T dO                        O is linear in V
        dP = (dO V^T) * D                        O is linear in P * D
        dS = P * (dP - rowsum(dP * P))           softmax's Jacobian: dP_j/dS_i = P_j (1[i=j] - P_i)
        dQ = dS K * scale,  dK = dS^T Q * scale   S = Q K^T * scale
        dM = dS                                  a float mask is added to S

    Masked scores are -inf, so P (and with it dS) is exactly 0 there: no
    gradient reaches a masked key. A row with every key masked gets P = 0.

    Memory: the graph keeps Q, K, V and one number per query row,
    lse = log sum_j e^(S_j), not the (L, S) matrix P; the backward recomputes
    P = e^(S - lse) from Q and K (one more matrix product), as flash attention
    does. The matrix products are NumPy's (BLAS); the row-wise passes between
    them are ``kernels.masked_softmax``, ``softmax_from_lse`` and
    ``masked_softmax_backward`` (kernels/attention_softmax.py, NumPy or Numba),
    in place on the (..., L, S) scores.
    """

    @staticmethod
    def scores(q, k, mask, scale):
        """S = Q K^T * scale (+ a float mask), (..., L, S); and the boolean mask, or None."""
        s = (q * scale) @ np.swapaxes(k, -1, -2)  # (..., L, S); scaling Q is cheaper than scaling S
        if mask is not None and mask.dtype == np.bool_:
            return s, mask
        if mask is not None:
            s += mask.astype(s.dtype, copy=False)  # the mask broadcasts to the scores' shape (checked)
        return s, None

    @staticmethod
    def forward(ctx, q, k, v, mask=None, is_causal=False, scale=None, dropout_p=0.0):
        scale = q.dtype.type(1 / math.sqrt(q.shape[-1]) if scale is None else scale)
        s, keep = ScaledDotProductAttention.scores(q, k, mask, scale)
        p, lse = kernels.masked_softmax(s, keep, is_causal)  # (..., L, S) in s's buffer, lse (..., L)
        drop = None
        if dropout_p > 0:  # the same draw as nn.functional.dropout: keep with probability 1 - p, scale by 1/(1 - p)
            drop = get_rng().random(p.shape, dtype=np.float32) >= dropout_p  # (..., L, S), bool
            p *= p.dtype.type(1 / (1 - dropout_p) if dropout_p < 1 else 0) * drop
        ctx.q, ctx.k, ctx.v, ctx.mask, ctx.is_causal, ctx.scale, ctx.lse = q, k, v, mask, is_causal, scale, lse
        ctx.drop, ctx.dropout_p = drop, dropout_p
        return p @ v  # (..., L, Ev)

    @staticmethod
    def backward(ctx, grad):
        q, k, v, scale = ctx.q, ctx.k, ctx.v, ctx.scale
        need_q, need_k, need_v, need_mask = (ctx.needs_input_grad + (False,) * 4)[:4]
        s, keep = ScaledDotProductAttention.scores(q, k, ctx.mask, scale)
        p = kernels.softmax_from_lse(s, ctx.lse, keep, ctx.is_causal)  # P again, (..., L, S)
        drop = None
        if ctx.drop is not None:
            drop = ctx.drop * p.dtype.type(1 / (1 - ctx.dropout_p) if ctx.dropout_p < 1 else 0)  # D, (..., L, S)
        pd = p if drop is None else p * drop
        dv = unbroadcast(np.swapaxes(pd, -1, -2) @ grad, v.shape) if need_v else None  # (..., S, Ev)
        if not (need_q or need_k or need_mask):
            return None, None, dv, None
        dp = grad @ np.swapaxes(v, -1, -2)  # (..., L, S)
        if drop is not None:
            dp *= drop
        ds = kernels.masked_softmax_backward(dp, p)  # dS = P * (dP - rowsum(dP * P)), in dP's buffer
        dq = unbroadcast(ds @ (k * scale), q.shape) if need_q else None  # (..., L, E)
        dk = unbroadcast(np.swapaxes(ds, -1, -2) @ (q * scale), k.shape) if need_k else None  # (..., S, E)
        dmask = unbroadcast(ds, ctx.mask.shape) if need_mask else None
        return dq, dk, dv, dmask


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """softmax(Q K^T * scale + mask) V as one fused op (``torch.nn.functional.scaled_dot_product_attention``).

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev).
    ``attn_mask``: boolean (True = take part) or float (added to the scores),
    broadcastable to (..., L, S); a float mask given as a tensor that requires
    grad receives a gradient. ``dropout_p > 0`` drops attention probabilities
    (use 0 at evaluation). Fully masked rows give zeros, not NaN.
    """
    _check_attention("scaled_dot_product_attention", query, key, value, attn_mask, is_causal, dropout_p)
    if isinstance(attn_mask, Tensor) and attn_mask.dtype == np.bool_:
        attn_mask = attn_mask.data
    elif attn_mask is not None and not isinstance(attn_mask, Tensor):
        attn_mask = np.asarray(attn_mask)
    return ScaledDotProductAttention.apply(
        query, key, value, attn_mask, is_causal=is_causal, scale=scale, dropout_p=dropout_p
    )


def masked_softmax(scores, keep=None):
    """softmax over the last axis of ``scores`` where ``keep`` is True; fully masked rows give zeros.

    ``keep`` (boolean, broadcastable to the scores) may be None; scores that
    are already -inf (from an additive mask) count as masked too.
    """
    if keep is not None:
        scores = scores.masked_fill(~keep, -np.inf)
    dead = np.isneginf(scores.data).all(axis=-1, keepdims=True)  # (..., L, 1): rows with no key left
    if not dead.any():
        return scores.softmax(axis=-1)
    return scores.masked_fill(dead, 0.0).softmax(axis=-1).masked_fill(dead, 0.0)


def attention_weights(query, key, attn_mask=None, is_causal=False, scale=None, dropout_p=0.0):
    """dropout(softmax(Q K^T * scale + mask)), composed from autograd primitives: (..., L, S).

    The same dropout mask as the fused op draws from the same seed.
    """
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale  # (..., L, S)
    keep = causal_mask(query.shape[-2], key.shape[-2]) if is_causal else None
    if attn_mask is not None and np.asarray(_raw(attn_mask)).dtype == np.bool_:
        keep = np.asarray(_raw(attn_mask))
    elif attn_mask is not None:
        scores = scores + (attn_mask if isinstance(attn_mask, Tensor) else np.asarray(attn_mask, scores.dtype))
    return dropout(masked_softmax(scores, keep), dropout_p)  # (..., L, S)


def scaled_dot_product_attention_composed(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None
):
    """The same as ``scaled_dot_product_attention``, built from primitives so autograd derives the backward.

    Slower and hungrier (the graph keeps every intermediate), but each line is
    one step of the formula.
    """
    _check_attention("scaled_dot_product_attention_composed", query, key, value, attn_mask, is_causal, dropout_p)
    return attention_weights(query, key, attn_mask, is_causal, scale, dropout_p) @ value  # (..., L, Ev)


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
        k, v = _raw(k), _raw(v)
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
    """

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, causal=True):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"CausalSelfAttention: n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_embd, self.n_head, self.causal = n_embd, n_head, causal
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = Linear(n_embd, n_embd, bias=bias)
        self.attn_dropout = Dropout(dropout)  # its p is handed to the fused attention op
        self.resid_dropout = Dropout(dropout)

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
        keep = None
        if cache is not None:
            if key_padding_mask is not None:
                raise ValueError("CausalSelfAttention: a KV cache cannot be combined with key_padding_mask")
            past = cache.length
            k, v = cache.append(k, v)  # (B, nh, past + T, hs)
            if self.causal and T > 1:  # new query i sits at position past + i: it sees keys j <= past + i
                keep = np.arange(past + T)[None, :] <= np.arange(past, past + T)[:, None]  # (T, past + T)
        elif key_padding_mask is not None:
            padding = np.asarray(_raw(key_padding_mask), dtype=bool)
            if padding.shape != (B, T):
                raise ValueError(
                    f"CausalSelfAttention: key_padding_mask must have shape (B, T) = {(B, T)}, got {padding.shape}"
                )
            keep = ~padding[:, None, None, :]  # (B, 1, 1, T)
            if self.causal:
                keep = keep & causal_mask(T)  # (B, 1, T, T)
        p = self.attn_dropout.p if self.training else 0.0
        y = scaled_dot_product_attention(
            q, k, v, attn_mask=keep, dropout_p=p, is_causal=self.causal and keep is None and cache is None
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_dropout(self.c_proj(y))

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}, causal={self.causal}"


class AdditiveAttention(Module):
    """Additive attention (Bahdanau, Cho & Bengio 2015): an MLP scores each query-key pair.

        score(q, k) = v^T tanh(W_q q + W_k k)        a = softmax over the keys      context = sum_j a_j value_j

    query (..., L, query_dim), key (..., S, key_dim), value (..., S, Dv)
    (defaults to key, as in the paper where the encoder states serve as both).
    ``mask`` (boolean, True = take part) broadcasts to (..., L, S). Returns
    (context (..., L, Dv), weights (..., L, S)).
    """

    def __init__(self, query_dim, key_dim, hidden_dim, dtype=np.float32):
        super().__init__()
        self.query_dim, self.key_dim, self.hidden_dim = query_dim, key_dim, hidden_dim
        self.W_q = Linear(query_dim, hidden_dim, bias=False, dtype=dtype)
        self.W_k = Linear(key_dim, hidden_dim, bias=False, dtype=dtype)
        self.v = Linear(hidden_dim, 1, bias=False, dtype=dtype)

    def forward(self, query, key, value=None, mask=None):
        value = key if value is None else value
        if query.shape[-1] != self.query_dim or key.shape[-1] != self.key_dim:
            raise ValueError(
                f"AdditiveAttention: expected query (..., {self.query_dim}) and key (..., {self.key_dim}), "
                f"got query {query.shape} and key {key.shape}"
            )
        if key.shape[-2] != value.shape[-2]:
            raise ValueError(f"AdditiveAttention: key {key.shape} and value {value.shape} need the same length S")
        try:
            batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2])
        except ValueError:
            raise ValueError(f"AdditiveAttention: batch axes of query {query.shape} and key {key.shape} differ") from None
        scores_shape = batch + (query.shape[-2], key.shape[-2])  # (..., L, S)
        if mask is not None:
            mask = np.asarray(_raw(mask))
            if mask.dtype != np.bool_ or not broadcasts_to(mask.shape, scores_shape):
                raise ValueError(
                    f"AdditiveAttention: mask must be boolean and broadcast to (..., L, S) = {scores_shape}, "
                    f"got {mask.dtype} {mask.shape}"
                )
        features = self.W_q(query).unsqueeze(-2) + self.W_k(key).unsqueeze(-3)  # (..., L, S, hidden)
        scores = self.v(features.tanh()).squeeze(-1)  # (..., L, S)
        weights = masked_softmax(scores, mask)  # (..., L, S)
        return weights @ value, weights  # (..., L, Dv), (..., L, S)

    def extra_repr(self):
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, hidden_dim={self.hidden_dim}"
