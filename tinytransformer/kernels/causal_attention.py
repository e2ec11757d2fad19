r"""Causal attention that skips the masked half: the sequence in block rows, BLAS products on or below the diagonal.

Under the causal mask query i sees keys j <= i only, so half of the (T, T)
score matrix S = Q K^T * scale is thrown away by the softmax. Cut the T
queries into block rows of ``block`` queries (the last one shorter). Block row
r, queries a..b-1 with b = min(a + block, T), sees keys 0..b-1 at most, so its
products need the keys and values of that prefix only:

    S_r = Q_r K[:b]^T * scale                          (..., b - a, b)
    P_r = softmax(S_r + causal mask), lse_r            mask needed in the diagonal block (keys a..b-1) only
    O_r = P_r V[:b]                                    (..., b - a, Ev)

Backward, with D = rowsum(dO * O) (..., T) computed once (it equals
rowsum(dP * P) row by row, since dP = dO V^T and O = P V), per block row:

    P_r   = e^(S_r - lse_r)                            recomputed from the lse the forward kept
    dV[:b] += P_r^T dO_r
    dP_r  = dO_r V[:b]^T
    dS_r  = P_r * (dP_r - D_r)                         the softmax's backward; 0 at masked keys, as P_r
    dQ_r  = dS_r K[:b] * scale,   dK[:b] += dS_r^T Q_r * scale

FLOPs per head: the full path's two products of the forward cost
2 * 2 T^2 d = 4 T^2 d, its backward's five 10 T^2 d. With nb = T / block block
rows, row r (1-based) multiplies block queries by r * block keys, so the products cost

    sum_(r=1..nb) r block^2 = block^2 nb (nb + 1) / 2 = T^2 (1 + 1/nb) / 2,   (1 + 1/nb) / 2 of the full path's:

0.625 at nb = 4 (T = 256, block = 64), tending to 1/2; the softmax passes
shrink alike. Flash attention (lessons/flash_attention.py) skips the masked
tiles as well but keeps the tiles in hand-written loops; here every product is
one batched ``np.matmul`` over the leading (batch, head) axes per block row,
BLAS's speed, holding one (..., block, T) block of scores at a time (two in the backward).

The Python loop over block rows costs a few matmul calls each, so a sequence
of at most ``BLOCK`` queries is one block row, the full path. Block size,
measured at GPT config B (q, k, v (16, 6, 256, 64), float32, forward +
backward through ``scaled_dot_product_attention``, one thread, CPU time,
median of 9, two runs on a shared 2-core machine), in ms:

    block                         256 (full)   128     64      32
    Numba, glibc's malloc         94-104       77-87   80-91   85-94
    Numba, tt.tune_allocator()    82-90        67-73   60-65   62-69
    NumPy, tt.tune_allocator()    111-114      83-88   71-74   70-73

64 is at or near the best on both backends (0.72-0.86x the full path's time,
not the 0.625x of its FLOPs: BLAS runs 64-row products below its peak) and
keeps config A (T = 64) on the single-product path.

The twins here are the row-wise passes on a block row's scores (..., rows, keys):
``causal_block_softmax`` (fills lse), ``causal_block_softmax_from_lse`` and
``causal_block_softmax_backward``; the Numba ones work in place. The loops over
block rows, ``causal_attention_forward`` and ``causal_attention_backward``,
call whichever backend is chosen.
"""

import numpy as np

from .attention_softmax import exp_row_numba, masked_softmax_numpy, softmax_from_lse_numpy, softmax_row_numba
from .backend import get_backend, one_blas_thread
from .jit import REASSOCIATE, numba_kernel, prange

BLOCK = 64  # queries per block row; see the module docstring for the measurement


def block_keep(n_rows, n_keys, first_query):
    """Causal mask of a block row: query first_query + i may see key j when j <= first_query + i; bool (rows, keys)."""
    return np.arange(n_keys)[None, :] <= first_query + np.arange(n_rows)[:, None]


def causal_block_softmax_numpy(scores, first_query):
    """softmax over the keys each query of the block row may see -> probs (..., rows, keys), lse (..., rows)."""
    keep = block_keep(*scores.shape[-2:], first_query)  # (rows, keys)
    return masked_softmax_numpy(scores, keep, False, scores.dtype.type(1))


def causal_block_softmax_from_lse_numpy(scores, lse, first_query):
    """The probabilities again: e^(s - lse) where the query may see the key, 0 elsewhere."""
    keep = block_keep(*scores.shape[-2:], first_query)  # (rows, keys)
    return softmax_from_lse_numpy(scores, lse, keep, False, scores.dtype.type(1))


def causal_block_softmax_backward_numpy(grad_probs, probs, row_dot):
    """dS = P * (dP - D): D = rowsum(dO * O) given per row; masked keys have P = 0, so dS = 0 there."""
    return probs * (grad_probs - row_dot[..., None])


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def causal_block_softmax_numba(scores, lse, first_query, recompute, exact):
    """The two softmax twins above in one, in place on ``scores`` (N, rows, keys), one row per iteration:
    ``recompute`` False fills ``lse`` (N, rows), True reads it.

    Row i stops at key first_query + i: the keys before the diagonal block need
    no mask at all, and the row's passes (``softmax_row_numba``) write the 0s past it.
    """
    n, rows, keys = scores.shape
    for row in prange(n * rows):
        b, i = row // rows, row % rows
        stop = min(first_query + i + 1, keys)
        if recompute:
            exp_row_numba(scores[b, i], stop, 1.0, lse[b, i], exact)
        else:
            lse[b, i] = softmax_row_numba(scores[b, i], stop, 1.0, exact)
    return scores


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def causal_block_softmax_backward_numba(grad_probs, probs, row_dot):
    """The same as causal_block_softmax_backward_numpy, in place on ``grad_probs`` (N, rows, keys)."""
    n, rows, keys = probs.shape
    for row in prange(n * rows):
        b, i = row // rows, row % rows
        g, p, d = grad_probs[b, i], probs[b, i], row_dot[b, i]  # (keys,), (keys,), scalar
        for j in range(keys):
            g[j] = p[j] * (g[j] - d)
    return grad_probs


def _check_block(name, scores, first_query):
    if not isinstance(scores, np.ndarray) or scores.ndim < 2 or scores.dtype.kind != "f":
        raise ValueError(f"{name}: scores must be a float array of shape (..., rows, keys), got {np.shape(scores)}")
    if first_query < 0:
        raise ValueError(f"{name}: first_query must be >= 0, got {first_query}")


def _use_numba(*arrays):
    return get_backend() == "numba" and all(a.flags.c_contiguous for a in arrays)


def _rows(a, n_axes=2):
    """(..., rows, keys) as (N, rows, keys), or with n_axes=1 (..., rows) as (N, rows): a view when contiguous."""
    return a.reshape((-1,) + a.shape[a.ndim - n_axes:])


def causal_block_softmax(scores, first_query):
    """Causal softmax of a block row's scores (..., rows, keys), query i at position first_query + i -> probs, lse.

    Key j takes part for query i when j <= first_query + i; probs are 0
    elsewhere. ``scores`` may be overwritten by the probabilities.
    """
    _check_block("causal_block_softmax", scores, first_query)
    if not _use_numba(scores):
        return causal_block_softmax_numpy(scores, first_query)
    lse = np.empty(scores.shape[:-1], dtype=scores.dtype)  # (..., rows)
    causal_block_softmax_numba(_rows(scores), _rows(lse, 1), first_query, False, scores.dtype != np.float32)
    return scores, lse


def causal_block_softmax_from_lse(scores, lse, first_query):
    """The probabilities of ``causal_block_softmax`` again from the same scores and its lse (scores may be overwritten)."""
    _check_block("causal_block_softmax_from_lse", scores, first_query)
    if np.shape(lse) != scores.shape[:-1]:
        raise ValueError(f"causal_block_softmax_from_lse: lse has shape {np.shape(lse)}, scores {scores.shape} need "
                         f"{scores.shape[:-1]}")
    lse = np.ascontiguousarray(lse, dtype=scores.dtype)
    if not _use_numba(scores):
        return causal_block_softmax_from_lse_numpy(scores, lse, first_query)
    causal_block_softmax_numba(_rows(scores), _rows(lse, 1), first_query, True, scores.dtype != np.float32)
    return scores


def causal_block_softmax_backward(grad_probs, probs, row_dot):
    """dS = P * (dP - D) for a block row, D (..., rows) = rowsum(dO * O); ``grad_probs`` may be overwritten."""
    if np.shape(grad_probs) != np.shape(probs) or np.shape(row_dot) != np.shape(probs)[:-1]:
        raise ValueError(f"causal_block_softmax_backward: grad_probs {np.shape(grad_probs)}, probs {np.shape(probs)} "
                         f"and row_dot {np.shape(row_dot)} do not match (..., rows, keys), (..., rows)")
    row_dot = np.ascontiguousarray(row_dot, dtype=probs.dtype)
    if not _use_numba(grad_probs, probs):
        return causal_block_softmax_backward_numpy(grad_probs, probs, row_dot)
    causal_block_softmax_backward_numba(_rows(grad_probs), _rows(probs), _rows(row_dot, 1))
    return grad_probs


def _block_rows(n_queries, n_keys, block):
    """(a, b, end) per block row: queries a..b-1 see keys 0..end-1 (causal, top-left aligned)."""
    for a in range(0, n_queries, block):
        b = min(a + block, n_queries)
        yield a, b, min(b, n_keys)


def causal_attention_forward(q, k, v, scale, block=None):
    """softmax(Q K^T * scale + causal mask) V by block rows -> out (..., L, Ev), lse (..., L).

    q (..., L, E), k (..., S, E), v (..., S, Ev); leading axes broadcast.
    Query i sees keys j <= i (top-left aligned, as ``is_causal``). ``block``:
    queries per block row, ``BLOCK`` by default.
    """
    block = BLOCK if block is None else block
    L, S = q.shape[-2], k.shape[-2]
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    qs = q * q.dtype.type(scale)  # (..., L, E); scaling Q is cheaper than scaling S
    kt = np.swapaxes(k, -1, -2)  # (..., E, S)
    dtype = np.result_type(q, k, v)
    out = np.empty(batch + (L, v.shape[-1]), dtype=dtype)  # (..., L, Ev)
    lse = np.empty(batch + (L,), dtype=dtype)  # (..., L)
    with one_blas_thread():  # a stack of small products: threading each one costs more than it saves
        for a, b, end in _block_rows(L, S, block):
            s = qs[..., a:b, :] @ kt[..., :end]  # (..., b - a, end)
            p, lse[..., a:b] = causal_block_softmax(s, a)  # (..., b - a, end), (..., b - a)
            np.matmul(p, v[..., :end, :], out=out[..., a:b, :])  # (..., b - a, Ev)
    return out, lse


def causal_attention_backward(grad, q, k, v, out, lse, scale, block=None):
    """Gradients of ``causal_attention_forward`` from dO = ``grad`` (..., L, Ev) and the forward's out and lse.

    Returns dq, dk, dv with the broadcast leading axes (the caller sums them
    back to each input's shape).
    """
    block = BLOCK if block is None else block
    L, S = q.shape[-2], k.shape[-2]
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    dtype = np.result_type(q, k, v, grad)
    row_dot = np.sum(grad * out, axis=-1)  # D = rowsum(dO * O), (..., L)
    qs, ks = q * q.dtype.type(scale), k * k.dtype.type(scale)  # (..., L, E), (..., S, E)
    kt, vt = np.swapaxes(k, -1, -2), np.swapaxes(v, -1, -2)  # (..., E, S), (..., Ev, S)
    dq = np.empty(batch + q.shape[-2:], dtype=dtype)  # (..., L, E)
    dk = np.zeros(batch + k.shape[-2:], dtype=dtype)  # (..., S, E)
    dv = np.zeros(batch + v.shape[-2:], dtype=dtype)  # (..., S, Ev)
    with one_blas_thread():  # as in the forward
        for a, b, end in _block_rows(L, S, block):
            g = grad[..., a:b, :]  # dO_r, (..., b - a, Ev)
            s = qs[..., a:b, :] @ kt[..., :end]  # S_r, (..., b - a, end)
            p = causal_block_softmax_from_lse(s, lse[..., a:b], a)  # P_r, (..., b - a, end)
            dv[..., :end, :] += np.swapaxes(p, -1, -2) @ g  # (..., end, Ev)
            ds = causal_block_softmax_backward(g @ vt[..., :end], p, row_dot[..., a:b])  # dS_r, (..., b - a, end)
            np.matmul(ds, ks[..., :end, :], out=dq[..., a:b, :])  # (..., b - a, E)
            dk[..., :end, :] += np.swapaxes(ds, -1, -2) @ qs[..., a:b, :]  # (..., end, E)
    return dq, dk, dv
