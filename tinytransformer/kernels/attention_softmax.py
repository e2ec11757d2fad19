r"""The row-wise pass of attention: a masked softmax over the keys, its recomputation, its backward.

For scores s (..., Tq, Tk), a scale and a mask (boolean, True = may attend,
and optionally causal: key j > query i masked):

    p_j = e^(scale s_j - lse)  where kept, 0 where masked,   lse = log sum_(kept j) e^(scale s_j)
    ds_j = scale p_j (dp_j - sum_k dp_k p_k)                   (the softmax's backward)

``masked_softmax`` returns p and lse; ``softmax_from_lse`` rebuilds p from
the same scores and lse alone, so that a forward pass can keep lse (one
number per row) instead of p (a (Tq, Tk) matrix per head) and the backward
recomputes p, as flash attention does. The Numba twins work in place, writing
their result into the (..., Tq, Tk) array they are given, so that no second
such array per layer is made; the NumPy twins, the formulas, return new arrays.
Callers use the returned arrays either way. A row with every key masked gets
p = 0 and lse = -inf, never NaN.
"""

import numpy as np

from .backend import get_backend
from .jit import REASSOCIATE, numba_kernel, prange
from .vector_math import exp as vector_exp


def keep_mask(mask, is_causal, tq, start, stop):
    """Which of keys start..stop each query may see: bool, broadcastable to (B, H, Tq, stop - start)."""
    keep = mask[..., start:stop] if mask.shape[-1] > 1 else mask  # (B or 1, H or 1, Tq or 1, t or 1)
    if is_causal:
        keep = keep & (np.arange(start, stop)[None, :] <= np.arange(tq)[:, None])  # (Tq, t)
    return keep


def masked_softmax_numpy(scores, mask, is_causal, scale):
    """softmax(scale * scores) over the last axis where mask (and causality) allow; 0 elsewhere.

    scores (..., Tq, Tk) -> probabilities (..., Tq, Tk), and each row's
    lse = log sum_j e^(scale * s_j) over the keys it sees, (..., Tq).
    A row with every score masked or -inf is all 0, and its lse is -inf.
    """
    keep = keep_mask(mask, is_causal, scores.shape[-2], 0, scores.shape[-1])
    s = np.where(keep, scores * scale, -np.inf)  # (..., Tq, Tk)
    row_max = s.max(axis=-1, keepdims=True)  # (..., Tq, 1)
    row_max[np.isneginf(row_max)] = 0  # a fully masked row: e^(-inf - 0) = 0 everywhere
    e = np.exp(s - row_max)  # (..., Tq, Tk)
    total = e.sum(axis=-1, keepdims=True)  # (..., Tq, 1)
    with np.errstate(divide="ignore"):  # log 0 = -inf for a fully masked row
        lse = (row_max + np.log(total))[..., 0]  # (..., Tq)
    return e / np.where(total == 0, 1, total), lse


def softmax_from_lse_numpy(scores, lse, mask, is_causal, scale):
    """The probabilities again from the scores and lse: p = e^(scale * s - lse), 0 where masked."""
    keep = keep_mask(mask, is_causal, scores.shape[-2], 0, scores.shape[-1])
    shift = np.where(np.isneginf(lse), np.inf, lse)[..., None]  # (..., Tq, 1); a fully masked row: e^(-inf) = 0
    return np.where(keep, np.exp(scores * scale - shift), 0)  # (..., Tq, Tk)


def masked_softmax_backward_numpy(grad_probs, probs, scale):
    """d(scores) = scale * p * (dp - sum_j dp_j p_j), row by row."""
    return (grad_probs - (grad_probs * probs).sum(axis=-1, keepdims=True)) * probs * scale


@numba_kernel(fastmath=REASSOCIATE)
def softmax_row_numba(s, stop, scale, exact):
    """s[:stop] = softmax(scale * s[:stop]) and s[stop:] = 0, in place; returns the row's lse.

    A function of its own: inlined into the loop below, its three passes
    (max; exp and sum; normalise) ran 2x slower, no longer vectorised.
    """
    m = -np.inf
    for j in range(stop):
        m = max(m, s[j] * scale)
    if m == -np.inf:  # every key masked
        stop = 0
    total = 0.0
    for j in range(stop):
        e = vector_exp(s[j] * scale - m, exact)
        s[j] = e
        total += e
    for j in range(stop):
        s[j] *= 1.0 / total
    for j in range(stop, s.size):
        s[j] = 0.0
    return m + np.log(total) if stop > 0 else -np.inf


@numba_kernel(fastmath=REASSOCIATE)
def exp_row_numba(s, stop, scale, lse, exact):
    """s[:stop] = e^(scale * s[:stop] - lse) and s[stop:] = 0, in place (a masked -inf gives 0)."""
    if lse == -np.inf:
        stop = 0
    for j in range(stop):
        s[j] = vector_exp(s[j] * scale - lse, exact)
    for j in range(stop, s.size):
        s[j] = 0.0


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def masked_softmax_numba(scores, lse, mask, is_causal, scale, recompute, exact):
    """The same as masked_softmax_numpy (``recompute`` False: fills ``lse``) or softmax_from_lse_numpy
    (True: reads it), in place on ``scores`` (B, H, Tq, Tk), one row per iteration.

    Masked keys become -inf first, so the row's passes need no mask; without a
    mask (a single True) that pass is skipped.
    """
    n_batch, n_head, tq, tk = scores.shape
    mb, mh, mi, mj = (int(mask.shape[0] > 1), int(mask.shape[1] > 1), int(mask.shape[2] > 1), int(mask.shape[3] > 1))
    unmasked = mask.size == 1 and mask[0, 0, 0, 0]
    for row in prange(n_batch * n_head * tq):
        b, h, i = row // (n_head * tq), (row // tq) % n_head, row % tq
        s, keep = scores[b, h, i], mask[b * mb, h * mh, i * mi]  # (Tk,), (Tk,) or (1,)
        stop = min(i + 1, tk) if is_causal else tk  # keys j >= stop are masked by causality
        if not unmasked:
            for j in range(stop):
                if not keep[j * mj]:
                    s[j] = -np.inf
        if recompute:
            exp_row_numba(s, stop, scale, lse[b, h, i], exact)
        else:
            lse[b, h, i] = softmax_row_numba(s, stop, scale, exact)
    return scores


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def masked_softmax_backward_numba(grad_probs, probs, scale):
    """The same as masked_softmax_backward_numpy, in place on ``grad_probs``, one row per iteration."""
    n_batch, n_head, tq, tk = probs.shape
    for row in prange(n_batch * n_head * tq):
        b, h, i = row // (n_head * tq), (row // tq) % n_head, row % tq
        g, p = grad_probs[b, h, i], probs[b, h, i]  # (Tk,), (Tk,)
        dot = 0.0
        for j in range(tk):
            dot += g[j] * p[j]
        for j in range(tk):
            g[j] = scale * p[j] * (g[j] - dot)
    return grad_probs


def broadcasts_to(shape, target) -> bool:
    """True when an array of ``shape`` broadcasts to exactly ``target`` (the mask checks of attention)."""
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def _rows_of_four_axes(a):
    """(..., Tq, Tk) as (N, 1, Tq, Tk) for the Numba kernels, N = all leading axes (a view if contiguous)."""
    return a.reshape((-1, 1) + a.shape[-2:])


def _softmax_mask(name, scores, attn_mask):
    """Check scores and mask; return the mask with at least two axes (Tq or 1, Tk or 1)."""
    if not isinstance(scores, np.ndarray) or scores.ndim < 2 or scores.dtype.kind != "f":
        raise ValueError(f"{name}: scores must be a float array of shape (..., Tq, Tk), got {np.shape(scores)}")
    mask = np.asarray(True if attn_mask is None else attn_mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"{name}: attn_mask must be boolean (True = may attend), got {mask.dtype}")
    mask = mask.reshape((1,) * max(0, 2 - mask.ndim) + mask.shape)
    if not broadcasts_to(mask.shape, scores.shape):
        raise ValueError(f"{name}: attn_mask of shape {mask.shape} does not broadcast to scores {scores.shape}")
    return mask


def _numba_softmax(scores, lse, mask, is_causal, scale, recompute):
    """Run masked_softmax_numba on (..., Tq, Tk) scores and (..., Tq) lse folded into four axes."""
    if any(n > 1 for n in mask.shape[:-2]):  # a mask per batch row or head: one (Tq or 1, Tk or 1) mask per row of N
        mask = np.broadcast_to(mask, scores.shape[:-2] + mask.shape[-2:])
    mask = np.ascontiguousarray(mask).reshape((-1, 1) + mask.shape[-2:])  # (N or 1, 1, Tq or 1, Tk or 1)
    masked_softmax_numba(_rows_of_four_axes(scores), lse.reshape(-1, 1, scores.shape[-2]), mask, bool(is_causal),
                         float(scale), recompute, scores.dtype != np.float32)


def masked_softmax(scores, attn_mask=None, is_causal=False, scale=1.0):
    """softmax(scale * scores) over the last axis, with masked keys at probability 0 -> probs, lse.

    ``scores`` (..., Tq, Tk), float, may be overwritten by the probabilities. ``lse``
    (..., Tq) is each row's log sum_j e^(scale * s_j), which is all that
    ``softmax_from_lse`` needs to recompute the probabilities later.
    ``attn_mask`` (boolean, True = may attend) broadcasts to the scores;
    ``is_causal`` masks key j > query i too. A row with every key masked (or
    every score -inf) gets zeros, not NaN, and lse = -inf.
    """
    mask = _softmax_mask("masked_softmax", scores, attn_mask)
    if get_backend() == "numpy" or not scores.flags.c_contiguous:
        return masked_softmax_numpy(scores, mask, bool(is_causal), scores.dtype.type(scale))
    lse = np.empty(scores.shape[:-1], dtype=scores.dtype)
    _numba_softmax(scores, lse, mask, is_causal, scale, recompute=False)
    return scores, lse


def softmax_from_lse(scores, lse, attn_mask=None, is_causal=False, scale=1.0):
    """The probabilities of ``masked_softmax`` again, from the same scores and its lse (``scores`` may be overwritten)."""
    mask = _softmax_mask("softmax_from_lse", scores, attn_mask)
    if np.shape(lse) != scores.shape[:-1]:
        raise ValueError(f"softmax_from_lse: lse has shape {np.shape(lse)} but scores {scores.shape} need {scores.shape[:-1]}")
    lse = np.ascontiguousarray(lse, dtype=scores.dtype)
    if get_backend() == "numpy" or not scores.flags.c_contiguous:
        return softmax_from_lse_numpy(scores, lse, mask, bool(is_causal), scores.dtype.type(scale))
    _numba_softmax(scores, lse, mask, is_causal, scale, recompute=True)
    return scores


def masked_softmax_backward(grad_probs, probs, scale=1.0):
    """Gradient of masked_softmax with respect to its scores: scale * p * (dp - rowsum(dp * p)).

    ``grad_probs`` (..., Tq, Tk) may be overwritten by the result, which is returned.
    """
    if np.shape(grad_probs) != np.shape(probs):
        raise ValueError(f"masked_softmax_backward: grad_probs {np.shape(grad_probs)} and probs {np.shape(probs)} differ")
    if get_backend() == "numpy" or not (grad_probs.flags.c_contiguous and probs.flags.c_contiguous):
        return masked_softmax_backward_numpy(grad_probs, probs, grad_probs.dtype.type(scale))
    masked_softmax_backward_numba(_rows_of_four_axes(grad_probs), _rows_of_four_axes(probs), float(scale))
    return grad_probs
