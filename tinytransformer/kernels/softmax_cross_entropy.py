r"""Softmax cross-entropy of logits against integer targets, forward and backward, in one pass.

For a row of logits x (V classes) and its target class t, with label smoothing
e the target distribution is q = (1 - e) onehot(t) + e / V, and

    lse  = log sum_j e^(x_j)                              (the log of softmax's denominator)
    loss = -sum_j q_j log p_j = (1 - e) (lse - x_t) + e (lse - mean_j x_j)
    dloss/dx = p - q,   p = softmax(x) = e^(x - lse)

The forward keeps only ``lse`` (one number per row), not the (N, V) softmax:
the backward recomputes p = e^(x - lse) element by element. Rows whose target
is ``ignore_index`` have zero loss and zero gradient, and ``reduction="mean"``
divides by the number of rows that are not ignored (NaN when every row is, as
in ``torch.nn.functional.cross_entropy``).
"""

import numpy as np

from .backend import get_backend, numba_kernel

prange = range  # numba.prange once Numba compiles the kernels (see backend.NumbaKernel)

REDUCTIONS = ("mean", "sum", "none")


def cross_entropy_rows_numpy(logits, target, label_smoothing):
    """logits (N, V), target (N,) with -1 for ignored rows -> loss per row (N,), lse (N,)."""
    m = logits.max(axis=1, keepdims=True)  # (N, 1)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))  # (N,)
    valid = target >= 0
    picked = logits[np.arange(len(target)), np.where(valid, target, 0)]  # (N,) x_t
    loss = (1 - label_smoothing) * (lse - picked) + label_smoothing * (lse - logits.mean(axis=1))
    return np.where(valid, loss, 0).astype(logits.dtype, copy=False), lse


def cross_entropy_grad_numpy(row_grad, logits, target, lse, label_smoothing):
    """row_grad (N,) = dL/dloss_i -> dlogits (N, V) = row_grad * (softmax - q); 0 on ignored rows."""
    n, v = logits.shape
    valid = target >= 0
    q = np.full(logits.shape, label_smoothing / v, dtype=logits.dtype)  # (N, V)
    q[np.arange(n), np.where(valid, target, 0)] += 1 - label_smoothing
    dlogits = (np.exp(logits - lse[:, None]) - q) * row_grad[:, None]  # (N, V)
    dlogits[~valid] = 0
    return dlogits


@numba_kernel(parallel=True)
def cross_entropy_rows_numba(logits, target, label_smoothing):
    """The same as cross_entropy_rows_numpy, one row per parallel iteration, sums in float64."""
    n, v = logits.shape
    loss = np.empty(n, dtype=logits.dtype)
    lse = np.empty(n, dtype=logits.dtype)
    for i in prange(n):
        m = -np.inf
        for j in range(v):
            m = max(m, logits[i, j])
        sum_exp = 0.0
        sum_x = 0.0
        for j in range(v):
            sum_exp += np.exp(logits[i, j] - m)
            sum_x += logits[i, j]
        row_lse = m + np.log(sum_exp)
        lse[i] = row_lse
        t = target[i]
        if t < 0:
            loss[i] = 0.0
        else:
            loss[i] = (1.0 - label_smoothing) * (row_lse - logits[i, t]) + label_smoothing * (row_lse - sum_x / v)
    return loss, lse


@numba_kernel(parallel=True)
def cross_entropy_grad_numba(row_grad, logits, target, lse, label_smoothing):
    """The same as cross_entropy_grad_numpy, one row per parallel iteration."""
    n, v = logits.shape
    dlogits = np.empty_like(logits)
    for i in prange(n):
        t = target[i]
        if t < 0:
            for j in range(v):
                dlogits[i, j] = 0.0
            continue
        w = row_grad[i]
        for j in range(v):
            dlogits[i, j] = w * (np.exp(logits[i, j] - lse[i]) - label_smoothing / v)
        dlogits[i, t] -= w * (1.0 - label_smoothing)
    return dlogits


def _prepare(name, logits, target, ignore_index, label_smoothing, reduction):
    """Check the arguments; return contiguous logits (N, V) and int64 targets with -1 for ignored rows."""
    logits = np.asarray(logits)
    target = np.asarray(target)
    if logits.ndim != 2 or logits.dtype.kind != "f":
        raise TypeError(f"{name}: logits must be a float array of shape (N, V), got {logits.dtype} {logits.shape}")
    if target.shape != logits.shape[:1] or target.dtype.kind not in "iu":
        raise TypeError(f"{name}: target must be integers of shape ({logits.shape[0]},), got {target.dtype} {target.shape}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= logits.shape[1]))
    if bad.any():
        raise IndexError(
            f"{name}: target {target[bad][0]} is out of range for {logits.shape[1]} classes "
            f"(and is not ignore_index={ignore_index})"
        )
    return np.ascontiguousarray(logits), np.where(valid, target, -1).astype(np.int64)


def cross_entropy_forward(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Cross-entropy of logits (N, V) against target (N,) -> (loss, lse).

    ``loss`` is a 0-d array for reduction "mean" or "sum", shape (N,) for
    "none"; keep ``lse`` (N,) for ``cross_entropy_backward``.
    """
    logits, t = _prepare("cross_entropy_forward", logits, target, ignore_index, label_smoothing, reduction)
    impl = cross_entropy_rows_numba if get_backend() == "numba" else cross_entropy_rows_numpy
    rows, lse = impl(logits, t, float(label_smoothing))  # (N,), (N,)
    if reduction == "none":
        return rows, lse
    total = rows.sum()
    if reduction == "mean":
        n_valid = int((t >= 0).sum())
        total = total / n_valid if n_valid else np.nan
    return np.asarray(total, dtype=logits.dtype), lse


def cross_entropy_backward(grad, logits, target, lse, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Gradient of cross_entropy_forward: grad (a scalar, or (N,) for "none") -> dlogits (N, V)."""
    logits, t = _prepare("cross_entropy_backward", logits, target, ignore_index, label_smoothing, reduction)
    n = logits.shape[0]
    grad = np.asarray(grad, dtype=logits.dtype)
    if reduction == "none" and grad.shape != (n,):
        raise ValueError(f"cross_entropy_backward: reduction='none' needs grad of shape ({n},), got {grad.shape}")
    if reduction != "none" and grad.size != 1:
        raise ValueError(f"cross_entropy_backward: reduction={reduction!r} needs a scalar grad, got {grad.shape}")
    if reduction == "mean":
        grad = grad / max(int((t >= 0).sum()), 1)
    row_grad = np.broadcast_to(grad.reshape(-1), (n,)).copy()  # (N,) dL/dloss_i
    impl = cross_entropy_grad_numba if get_backend() == "numba" else cross_entropy_grad_numpy
    lse = np.ascontiguousarray(lse, dtype=logits.dtype)
    return impl(row_grad, logits, t, lse, float(label_smoothing))
