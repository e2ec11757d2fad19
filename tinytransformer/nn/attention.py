"""Scaled dot-product attention (Vaswani et al. 2017) as a function: the op, its composed twin, the masks.

For queries Q (..., L, E), keys K (..., S, E) and values V (..., S, Ev):

    S = Q K^T * scale + M          scores, (..., L, S); scale = 1/sqrt(E) by default
    P = softmax(S)                 over the keys, each row sums to 1
    O = P V                        (..., L, Ev)

The mask convention of every function here is PyTorch's for
``scaled_dot_product_attention``: a boolean ``attn_mask`` is True where a
query may attend to a key (it puts -inf on the other scores), a float one is
added to the scores, and ``is_causal=True`` forbids key j for query i when
j > i. Masks broadcast over batch and heads. (The layers translate their own
PyTorch conventions into this one: ``MultiheadAttention``'s True = "ignore",
``key_padding_mask``'s True = padding.)

A query whose keys are *all* masked has no distribution to attend with;
PyTorch returns NaN for that row, this library returns a row of zeros (and
zero gradient), so a fully padded sequence cannot poison a batch.

The same computation is written twice: ``scaled_dot_product_attention`` is one
``Function`` with its backward derived by hand (fast, little memory: the graph
keeps Q, K, V and one number per query row), and
``scaled_dot_product_attention_composed`` chains autograd primitives
(``attention_weights``: matmul, ``masked_softmax``; then a matmul), whose
backward autograd derives. The tests hold the two, and PyTorch, to each other.

The layers built on these live beside this file: ``self_attention.py``
(``CausalSelfAttention``, GPT's layer, with its ``KVCache``),
``multihead.py`` (``MultiheadAttention``, PyTorch's layer, which the
encoder-decoder reuses) and ``additive_attention.py`` (Bahdanau's).
"""

import math

import numpy as np

from .. import kernels
from ..autograd import Function, Tensor, as_array, unbroadcast
from ..kernels import causal_attention
from ..kernels.attention_softmax import broadcasts_to
from ..rng import get_rng
from .dropout import dropout


def causal_mask(n_queries, n_keys=None):
    """Boolean (L, S) mask, True where query i may attend to key j, i.e. j <= i (top-left aligned)."""
    return np.tri(n_queries, n_queries if n_keys is None else n_keys, dtype=bool)



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
        mask = np.asarray(as_array(attn_mask))
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
    on the (..., L, S) scores.

    Causal attention without another mask and without dropout, on more than
    ``causal_attention.BLOCK`` queries, skips the masked half instead: the
    queries in block rows, each multiplied against the keys up to its diagonal
    only, (1 + 1/nb)/2 of the products for nb block rows (0.625 at T = 256);
    see kernels/causal_attention.py. Its backward uses the same dS with
    rowsum(dP * P) = rowsum(dO * O), so the graph keeps O as well.
    """

    @staticmethod
    def skips_masked_half(q, mask, is_causal, dropout_p):
        """True when the causal block rows apply: causal only, no dropout, more queries than one block row."""
        return is_causal and mask is None and dropout_p == 0 and q.shape[-2] > causal_attention.BLOCK

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
        ctx.q, ctx.k, ctx.v, ctx.mask, ctx.is_causal, ctx.scale = q, k, v, mask, is_causal, scale
        ctx.blocked = ScaledDotProductAttention.skips_masked_half(q, mask, is_causal, dropout_p)
        if ctx.blocked:
            ctx.out, ctx.lse = causal_attention.causal_attention_forward(q, k, v, scale)  # (..., L, Ev), (..., L)
            return ctx.out
        s, keep = ScaledDotProductAttention.scores(q, k, mask, scale)
        p, lse = kernels.masked_softmax(s, keep, is_causal)  # (..., L, S), lse (..., L)
        drop = None
        if dropout_p > 0:  # the same draw as nn.functional.dropout: keep with probability 1 - p, scale by 1/(1 - p)
            drop = get_rng().random(p.shape, dtype=np.float32) >= dropout_p  # (..., L, S), bool
            p *= p.dtype.type(1 / (1 - dropout_p) if dropout_p < 1 else 0) * drop
        ctx.lse, ctx.drop, ctx.dropout_p = lse, drop, dropout_p
        return p @ v  # (..., L, Ev)

    @staticmethod
    def backward(ctx, grad):
        q, k, v, scale = ctx.q, ctx.k, ctx.v, ctx.scale
        need_q, need_k, need_v, need_mask = (ctx.needs_input_grad + (False,) * 4)[:4]
        if ctx.blocked:
            dq, dk, dv = causal_attention.causal_attention_backward(grad, q, k, v, ctx.out, ctx.lse, scale)
            return (unbroadcast(dq, q.shape) if need_q else None, unbroadcast(dk, k.shape) if need_k else None,
                    unbroadcast(dv, v.shape) if need_v else None, None)
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
        ds = kernels.masked_softmax_backward(dp, p)  # dS = P * (dP - rowsum(dP * P)), (..., L, S)
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


def masked_softmax(scores, attn_mask=None, is_causal=False):
    """softmax over the keys (the last axis) of ``scores`` (..., L, S), with masked keys at probability 0.

        p_j = e^(s_j) / sum_(kept k) e^(s_k)   for a kept key j,    p_j = 0 for a masked one

    The library's one masked softmax on Tensors (autograd derives its
    backward); the array kernel inside the fused op (kernels/attention_softmax.py)
    computes the same, with the same convention. ``attn_mask`` is
    ``scaled_dot_product_attention``'s: boolean True = take part, float =
    added to the scores; ``is_causal`` masks key j > query i as well. Scores
    already -inf count as masked. A row with no key left gives zeros (and zero
    gradient), not NaN.
    """
    keep = causal_mask(*scores.shape[-2:]) if is_causal else None  # (L, S) or None
    if attn_mask is not None:
        mask = np.asarray(as_array(attn_mask))
        if mask.dtype == np.bool_:
            keep = mask if keep is None else keep & mask
        elif mask.dtype.kind == "f":
            scores = scores + (attn_mask if isinstance(attn_mask, Tensor) else mask.astype(scores.dtype))
        else:
            raise TypeError(
                f"masked_softmax: attn_mask must be boolean (True = take part) or float (added), got {mask.dtype}"
            )
    if keep is not None:
        scores = scores.masked_fill(~keep, -np.inf)
    dead = np.isneginf(scores.data).all(axis=-1, keepdims=True)  # (..., L, 1): rows with no key left
    if not dead.any():
        return scores.softmax(axis=-1)
    return scores.masked_fill(dead, 0.0).softmax(axis=-1).masked_fill(dead, 0.0)


def attention_weights(query, key, attn_mask=None, is_causal=False, scale=None, dropout_p=0.0):
    """P = dropout(softmax(Q K^T * scale + M)), composed from autograd primitives: (..., L, S).

    Masks as in ``scaled_dot_product_attention``. The same dropout mask as the
    fused op draws from the same seed.
    """
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale  # (..., L, S)
    return dropout(masked_softmax(scores, attn_mask, is_causal), dropout_p)  # (..., L, S)


def scaled_dot_product_attention_composed(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None
):
    """The same as ``scaled_dot_product_attention``, built from primitives so autograd derives the backward.

    Slower and hungrier (the graph keeps every intermediate), but each line is
    one step of the formula.
    """
    _check_attention("scaled_dot_product_attention_composed", query, key, value, attn_mask, is_causal, dropout_p)
    return attention_weights(query, key, attn_mask, is_causal, scale, dropout_p) @ value  # (..., L, Ev)
