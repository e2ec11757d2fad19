r"""Scaled dot-product attention, O = softmax(Q K^T * scale, masked) V, forward and backward, two ways.

For one query row q_i (of Q, shape (Tq, D)) against keys K and values V (Tk, D):

    s_ij = scale * q_i . k_j          (s_ij = -inf where j is masked; causal: j > i is masked)
    p_ij = e^(s_ij - lse_i),   lse_i = log sum_j e^(s_ij),   o_i = sum_j p_ij v_j

Backward, with dO given and D_i = dO_i . o_i (= sum_j p_ij dp_ij):

    dp_ij = dO_i . v_j,   ds_ij = p_ij (dp_ij - D_i)
    dV_j = sum_i p_ij dO_i,   dQ_i = scale sum_j ds_ij k_j,   dK_j = scale sum_i ds_ij q_i

1. ``flash_attention_*`` (Dao et al. 2022, "FlashAttention"): walk over the
   keys in tiles of KEY_TILE, keeping for each query a running maximum m, a
   running denominator l and a running output; when a tile raises the maximum
   from m to m', everything accumulated so far is rescaled by e^(m - m')
   ("online softmax", Milakov & Gimelshein 2018). No (Tq, Tk) matrix is ever
   stored: the forward saves O and lse, and the backward recomputes p_ij from
   them, so memory grows linearly with the sequence length.
2. ``blas_attention_*``: the two products as ``np.matmul`` (BLAS), and between
   them one fused pass that scales, masks and normalises the (B, H, Tq, Tk)
   scores. It keeps the probabilities for the backward (quadratic memory), but
   BLAS matmuls beat hand-written loops: on 2 cores this is the faster path,
   while the flash path mainly saves memory.

q (B, H, Tq, D), k and v (B, H, Tk, D). ``attn_mask`` is boolean, True where a
query may attend to a key, broadcastable to (B, H, Tq, Tk); ``is_causal`` adds
the causal mask j <= i (top-left aligned), and the two combine. A query with
every key masked gets zeros (output and gradients), never NaN; its lse is -inf.

Why this file sits beside the lessons and not in ``tinytransformer/kernels/``:
nothing in the library runs it. The training step's attention
(``F.scaled_dot_product_attention``) is the BLAS form with one idea taken from
flash attention (it keeps lse, not the probabilities), because on a few cores
BLAS's products beat these loops at the context lengths we train. Lesson 10
measures the memory of the two forms, ``benchmarks/bench_kernels.py`` their
speed, and ``tests/kernels/test_kernels_attention.py`` checks them against
each other, against PyTorch and against finite differences. Both forms are
written with the library's kernel tools: ``numba_kernel`` and ``prange`` from
``tinytransformer/kernels/jit.py``, and the masked softmax kernels.
"""

import math

import numpy as np

from tinytransformer.kernels import get_backend, masked_softmax, masked_softmax_backward
from tinytransformer.kernels.attention_softmax import keep_mask
from tinytransformer.kernels.jit import REASSOCIATE, numba_kernel, prange

KEY_TILE = 64  # keys per tile of the flash forward


def flash_attention_forward_numpy(q, k, v, mask, is_causal, scale):
    """Tiled online softmax over key tiles, vectorised over all query rows -> out, lse."""
    m = np.full(q.shape[:3] + (1,), -np.inf, dtype=q.dtype)  # (B, H, Tq, 1) running max
    l = np.zeros_like(m)  # (B, H, Tq, 1) running denominator
    acc = np.zeros_like(q)  # (B, H, Tq, D) running numerator
    for start in range(0, k.shape[2], KEY_TILE):
        stop = min(start + KEY_TILE, k.shape[2])
        s = q @ k[:, :, start:stop].swapaxes(-1, -2) * scale  # (B, H, Tq, t)
        s = np.where(keep_mask(mask, is_causal, q.shape[2], start, stop), s, -np.inf)
        m_new = np.maximum(m, s.max(axis=-1, keepdims=True))  # (B, H, Tq, 1)
        shift = np.where(np.isfinite(m_new), m_new, 0)  # rows masked so far: avoid -inf - -inf
        p = np.exp(s - shift)  # (B, H, Tq, t), 0 where masked
        rescale = np.exp(m - shift)  # e^(m - m'), 0 on a row's first visible tile
        l = l * rescale + p.sum(axis=-1, keepdims=True)
        acc = acc * rescale + p @ v[:, :, start:stop]  # (B, H, Tq, D)
        m = m_new
    empty = l == 0  # every key masked
    safe_l = np.where(empty, 1, l)
    out = np.where(empty, 0, acc / safe_l)  # (B, H, Tq, D)
    lse = np.where(empty, -np.inf, m + np.log(safe_l))[..., 0]  # (B, H, Tq)
    return out, lse


def flash_attention_backward_numpy(grad_out, q, k, v, out, lse, mask, is_causal, scale):
    """Recompute p one key tile at a time from lse -> dq, dk, dv."""
    d_row = (grad_out * out).sum(axis=-1, keepdims=True)  # (B, H, Tq, 1) D_i
    lse = lse[..., None]  # (B, H, Tq, 1); a query with every key masked has lse = -inf, but also p = 0 below
    dq = np.zeros_like(q)
    dk, dv = np.empty_like(k), np.empty_like(v)
    for start in range(0, k.shape[2], KEY_TILE):
        stop = min(start + KEY_TILE, k.shape[2])
        kt, vt = k[:, :, start:stop], v[:, :, start:stop]  # (B, H, t, D)
        s = q @ kt.swapaxes(-1, -2) * scale  # (B, H, Tq, t)
        p = np.where(keep_mask(mask, is_causal, q.shape[2], start, stop), np.exp(s - lse), 0)  # (B, H, Tq, t)
        dv[:, :, start:stop] = p.swapaxes(-1, -2) @ grad_out  # (B, H, t, D)
        ds = p * (grad_out @ vt.swapaxes(-1, -2) - d_row)  # (B, H, Tq, t)
        dq += ds @ kt * scale
        dk[:, :, start:stop] = ds.swapaxes(-1, -2) @ q * scale  # (B, H, t, D)
    return dq, dk, dv


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def flash_attention_forward_numba(q, k, v, mask, is_causal, scale):
    """The same as flash_attention_forward_numpy: one (batch, head) per parallel iteration, then
    one query row at a time, its keys in tiles of KEY_TILE with the running max/denominator.

    Every scalar is in q's dtype (``scale`` too), so float32 inputs compute in
    float32, like BLAS, and call the faster single-precision exp. Rows are taken
    as 1-d views, so the loops over D compile to SIMD instructions.
    """
    n_batch, n_head, tq, dim = q.shape
    tk = k.shape[2]
    out = np.empty_like(q)
    lse = np.empty((n_batch, n_head, tq), dtype=q.dtype)
    zero, neg_inf = np.zeros(1, dtype=q.dtype)[0], np.full(1, -np.inf, dtype=q.dtype)[0]  # in q's dtype: see below
    mb, mh, mi, mj = (int(mask.shape[0] > 1), int(mask.shape[1] > 1), int(mask.shape[2] > 1), int(mask.shape[3] > 1))
    for bh in prange(n_batch * n_head):
        b, h = bh // n_head, bh % n_head
        s = np.empty(KEY_TILE, dtype=q.dtype)
        acc = np.empty(dim, dtype=q.dtype)
        for i in range(tq):
            qi, keep = q[b, h, i], mask[b * mb, h * mh, i * mi]  # (D,), (Tk,) or (1,)
            stop = min(i + 1, tk) if is_causal else tk
            m = neg_inf
            l = zero
            for d in range(dim):
                acc[d] = 0.0
            for start in range(0, stop, KEY_TILE):
                end = min(start + KEY_TILE, stop)
                tile_max = neg_inf
                for j in range(start, end):
                    s[j - start] = -np.inf
                    if keep[j * mj]:
                        kj = k[b, h, j]
                        dot = zero
                        for d in range(dim):
                            dot += qi[d] * kj[d]
                        s[j - start] = dot * scale
                        tile_max = max(tile_max, s[j - start])
                if tile_max == -np.inf:
                    continue  # nothing visible in this tile
                m_new = max(m, tile_max)
                rescale = np.exp(m - m_new)
                l *= rescale
                for d in range(dim):
                    acc[d] *= rescale
                for j in range(start, end):
                    p = np.exp(s[j - start] - m_new)
                    l += p
                    vj = v[b, h, j]
                    for d in range(dim):
                        acc[d] += p * vj[d]
                m = m_new
            for d in range(dim):
                out[b, h, i, d] = acc[d] / l if l > 0.0 else 0.0
            lse[b, h, i] = m + np.log(l) if l > 0.0 else -np.inf
    return out, lse


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def flash_attention_backward_numba(grad_out, q, k, v, out, lse, mask, is_causal, scale):
    """The same as flash_attention_backward_numpy: one (batch, head) per parallel iteration
    (dk and dv sum over query rows, so the rows of one head stay on one thread).

    The outer loop runs over keys: dk_j and dv_j then sum in two small buffers,
    and only dq is updated in memory for every (query, key) pair.
    """
    n_batch, n_head, tq, dim = q.shape
    tk = k.shape[2]
    dq = np.zeros_like(q)
    dk = np.empty_like(k)
    dv = np.empty_like(v)
    zero = np.zeros(1, dtype=q.dtype)[0]
    mb, mh, mi, mj = (int(mask.shape[0] > 1), int(mask.shape[1] > 1), int(mask.shape[2] > 1), int(mask.shape[3] > 1))
    for bh in prange(n_batch * n_head):
        b, h = bh // n_head, bh % n_head
        d_row = np.empty(tq, dtype=q.dtype)  # D_i = dO_i . o_i
        for i in range(tq):
            acc = zero
            for d in range(dim):
                acc += grad_out[b, h, i, d] * out[b, h, i, d]
            d_row[i] = acc
        dkj = np.empty(dim, dtype=q.dtype)
        dvj = np.empty(dim, dtype=q.dtype)
        for j in range(tk):
            kj, vj = k[b, h, j], v[b, h, j]
            for d in range(dim):
                dkj[d] = 0.0
                dvj[d] = 0.0
            for i in range(j if is_causal else 0, tq):
                if not mask[b * mb, h * mh, i * mi, j * mj]:
                    continue  # no gradient through a masked pair (nor to a query with every key masked)
                qi, doi, dqi = q[b, h, i], grad_out[b, h, i], dq[b, h, i]
                dot = zero
                dp = zero
                for d in range(dim):
                    dot += qi[d] * kj[d]
                    dp += doi[d] * vj[d]
                p = np.exp(dot * scale - lse[b, h, i])
                ds = p * (dp - d_row[i]) * scale
                for d in range(dim):
                    dvj[d] += p * doi[d]
                    dkj[d] += ds * qi[d]
                    dqi[d] += ds * kj[d]
            for d in range(dim):
                dk[b, h, j, d] = dkj[d]
                dv[b, h, j, d] = dvj[d]
    return dq, dk, dv


def _prepare(name, q, k, v, attn_mask, scale):
    """Check shapes; return contiguous q, k, v, the mask with four axes, and the scale (default 1/sqrt(D))."""
    q, k, v = (np.ascontiguousarray(a) for a in (q, k, v))
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4 or q.dtype.kind != "f":
        raise ValueError(f"{name}: q, k, v must be float arrays of shape (B, H, T, D), got {q.shape}, {k.shape}, {v.shape}")
    if k.shape != v.shape or q.shape[:2] + q.shape[3:] != k.shape[:2] + k.shape[3:]:
        raise ValueError(f"{name}: q {q.shape}, k {k.shape}, v {v.shape} must share B, H, D, and k, v must share T")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"{name}: q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    shape = q.shape[:3] + k.shape[2:3]  # (B, H, Tq, Tk)
    mask = np.asarray(True if attn_mask is None else attn_mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"{name}: attn_mask must be boolean (True = may attend), got {mask.dtype}")
    if mask.ndim > 4 or any(m not in (1, n) for m, n in zip(mask.shape[::-1], shape[::-1])):
        raise ValueError(f"{name}: attn_mask of shape {mask.shape} does not broadcast to (B, H, Tq, Tk) = {shape}")
    # Four axes, each of length 1 (broadcast: the kernels index it at 0) or full length; no (B, H, Tq, Tk) copy.
    mask = np.ascontiguousarray(mask.reshape((1,) * (4 - mask.ndim) + mask.shape))
    return q, k, v, mask, q.dtype.type(1 / math.sqrt(q.shape[-1]) if scale is None else scale)  # a float32 stays float32


def flash_attention_forward(q, k, v, attn_mask=None, is_causal=True, scale=None):
    """Attention with memory linear in T -> out (B, H, Tq, D), lse (B, H, Tq); keep both for the backward."""
    q, k, v, mask, scale = _prepare("flash_attention_forward", q, k, v, attn_mask, scale)
    impl = flash_attention_forward_numba if get_backend() == "numba" else flash_attention_forward_numpy
    return impl(q, k, v, mask, bool(is_causal), scale)


def flash_attention_backward(grad_out, q, k, v, out, lse, attn_mask=None, is_causal=True, scale=None):
    """Gradients of flash_attention_forward -> dq, dk, dv."""
    q, k, v, mask, scale = _prepare("flash_attention_backward", q, k, v, attn_mask, scale)
    if np.shape(grad_out) != q.shape or np.shape(out) != q.shape or np.shape(lse) != q.shape[:3]:
        raise ValueError(f"flash_attention_backward: grad_out {np.shape(grad_out)}, out {np.shape(out)} must be "
                         f"{q.shape} and lse {np.shape(lse)} must be {q.shape[:3]}")
    grad_out, out, lse = (np.ascontiguousarray(a, dtype=q.dtype) for a in (grad_out, out, lse))
    impl = flash_attention_backward_numba if get_backend() == "numba" else flash_attention_backward_numpy
    return impl(grad_out, q, k, v, out, lse, mask, bool(is_causal), scale)


def blas_attention_forward(q, k, v, attn_mask=None, is_causal=True, scale=None):
    """Attention through np.matmul and one fused softmax -> out (B, H, Tq, D), probs (B, H, Tq, Tk)."""
    q, k, v, mask, scale = _prepare("blas_attention_forward", q, k, v, attn_mask, scale)
    scores = q @ k.swapaxes(-1, -2)  # (B, H, Tq, Tk), unscaled: the softmax pass scales
    probs, _ = masked_softmax(scores, mask, is_causal, scale)  # in place
    return probs @ v, probs  # (B, H, Tq, D), (B, H, Tq, Tk)


def blas_attention_backward(grad_out, q, k, v, probs, scale=None):
    """Gradients of blas_attention_forward from its probs -> dq, dk, dv (masks live in probs' zeros)."""
    q, k, v, _, scale = _prepare("blas_attention_backward", q, k, v, None, scale)
    if np.shape(grad_out) != q.shape or np.shape(probs) != q.shape[:3] + k.shape[2:3]:
        raise ValueError(f"blas_attention_backward: grad_out {np.shape(grad_out)} must be {q.shape} and "
                         f"probs {np.shape(probs)} must be {q.shape[:3] + k.shape[2:3]}")
    grad_out = np.asarray(grad_out, dtype=q.dtype)
    probs = np.ascontiguousarray(probs, dtype=q.dtype)
    dv = probs.swapaxes(-1, -2) @ grad_out  # (B, H, Tk, D)
    grad_probs = grad_out @ v.swapaxes(-1, -2)  # (B, H, Tq, Tk)
    ds = masked_softmax_backward(grad_probs, probs, scale)  # in place
    return ds @ k, ds.swapaxes(-1, -2) @ q, dv  # dq (B, H, Tq, D), dk (B, H, Tk, D), dv
