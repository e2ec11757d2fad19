r"""Softmax cross-entropy of logits against integer targets, forward and backward, in one pass.

For a row of logits x (V classes) and its target class t, with class weights
w (all 1 by default) and label smoothing e, the target distribution is
q_c = (1 - e) w_t [c = t] + (e / V) w_c, and

    lse  = log sum_c e^(x_c)                              (the log of softmax's denominator)
    loss = -sum_c q_c log p_c = (1 - e) w_t (lse - x_t) + (e / V) sum_c w_c (lse - x_c)
    dloss/dx_c = p_c sum_k q_k - q_c,   p = softmax(x) = e^(x - lse)

which without weights (sum_k q_k = 1) is the familiar p - q. The forward keeps
only ``lse`` (one number per row), not the (N, V) softmax: the backward
recomputes p = e^(x - lse) element by element. Rows whose target is
``ignore_index`` have zero loss and zero gradient, and ``reduction="mean"``
divides by the sum of w_t over the rows that are not ignored (their number
without weights; NaN when every row is ignored, as in
``torch.nn.functional.cross_entropy``).
"""

import numpy as np

from .backend import get_backend
from .jit import REASSOCIATE, numba_kernel, prange
from .vector_math import exp as vector_exp

REDUCTIONS = ("mean", "sum", "none")


def cross_entropy_rows_numpy(logits, target, weight, label_smoothing):
    """logits (N, V), target (N,) with -1 for ignored rows, weight (V,) -> loss per row (N,), lse (N,)."""
    m = logits.max(axis=1, keepdims=True)  # (N, 1)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))  # (N,)
    valid = target >= 0
    safe_t = np.where(valid, target, 0)
    picked = logits[np.arange(len(target)), safe_t]  # (N,) x_t
    smooth = lse * weight.sum() - logits @ weight  # (N,) sum_c w_c (lse - x_c)
    loss = (1 - label_smoothing) * weight[safe_t] * (lse - picked) + label_smoothing / logits.shape[1] * smooth
    return np.where(valid, loss, 0), lse


def cross_entropy_grad_numpy(row_grad, logits, target, weight, lse, label_smoothing):
    """row_grad (N,) = dL/dloss_i -> dlogits (N, V) = row_grad * (p sum_k q_k - q); 0 on ignored rows."""
    n, v = logits.shape
    valid = target >= 0
    safe_t = np.where(valid, target, 0)
    q = np.tile(label_smoothing / v * weight, (n, 1))  # (N, V) target distribution: (e / V) w_c everywhere,
    q[np.arange(n), safe_t] += (1 - label_smoothing) * weight[safe_t]  # plus (1 - e) w_t at the target
    p = np.exp(logits - lse[:, None])  # (N, V) softmax, recomputed from lse
    return (p * q.sum(axis=1, keepdims=True) - q) * np.where(valid, row_grad, 0)[:, None]  # (N, V)


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def cross_entropy_rows_numba(logits, target, weight, label_smoothing, exact):
    """The same as cross_entropy_rows_numpy, one row per parallel iteration."""
    n, v = logits.shape
    loss = np.empty(n, dtype=logits.dtype)
    lse = np.empty(n, dtype=logits.dtype)
    weight_total = 0.0
    for j in range(v):
        weight_total += weight[j]
    for i in prange(n):
        x = logits[i]  # (V,)
        m = x[0]
        for j in range(1, v):
            m = max(m, x[j])
        sum_exp = 0.0
        sum_wx = 0.0
        for j in range(v):
            sum_exp += vector_exp(x[j] - m, exact)
            sum_wx += weight[j] * x[j]
        row_lse = m + np.log(sum_exp)
        lse[i] = row_lse
        t = target[i]
        if t < 0:
            loss[i] = 0.0
        else:
            loss[i] = ((1.0 - label_smoothing) * weight[t] * (row_lse - x[t])
                       + label_smoothing / v * (row_lse * weight_total - sum_wx))
    return loss, lse


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def cross_entropy_grad_numba(row_grad, logits, target, weight, lse, label_smoothing, exact):
    """The same as cross_entropy_grad_numpy, one row per parallel iteration."""
    n, v = logits.shape
    dlogits = np.empty_like(logits)
    weight_total = 0.0
    for j in range(v):
        weight_total += weight[j]
    for i in prange(n):
        t = target[i]
        dx = dlogits[i]  # (V,)
        if t < 0:
            for j in range(v):
                dx[j] = 0.0
            continue
        g = row_grad[i]
        smooth = label_smoothing / v
        q_total = (1.0 - label_smoothing) * weight[t] + smooth * weight_total  # sum_k q_k
        x, row_lse = logits[i], lse[i]
        for j in range(v):
            dx[j] = g * (vector_exp(x[j] - row_lse, exact) * q_total - smooth * weight[j])
        dx[t] -= g * (1.0 - label_smoothing) * weight[t]
    return dlogits


def _prepare(name, logits, target, ignore_index, label_smoothing, reduction, weight):
    """Check the arguments; return contiguous logits (N, V), int64 targets with -1 for ignored rows, weight (V,)."""
    logits = np.asarray(logits)
    target = np.asarray(target)
    if logits.ndim != 2 or logits.shape[1] == 0 or logits.dtype.kind != "f":
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
    v = logits.shape[1]
    if weight is None:
        weight = np.ones(v, dtype=logits.dtype)
    elif np.shape(weight) != (v,):
        raise ValueError(f"{name}: weight must have shape ({v},), one per class, got {np.shape(weight)}")
    weight = np.ascontiguousarray(weight, dtype=logits.dtype)
    return np.ascontiguousarray(logits), np.where(valid, target, -1).astype(np.int64), weight


def _denominator(t, weight):
    """What reduction="mean" divides by: the sum of w_t over the rows that are not ignored."""
    return weight[t[t >= 0]].sum()


def cross_entropy_forward(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean", weight=None):
    """Cross-entropy of logits (N, V) against target (N,) -> (loss, lse).

    ``loss`` is a 0-d array for reduction "mean" or "sum", shape (N,) for
    "none"; keep ``lse`` (N,) for ``cross_entropy_backward``. ``weight``: one
    number per class, or None.
    """
    logits, t, w = _prepare("cross_entropy_forward", logits, target, ignore_index, label_smoothing, reduction, weight)
    if get_backend() == "numba":
        rows, lse = cross_entropy_rows_numba(logits, t, w, float(label_smoothing), logits.dtype != np.float32)
    else:
        rows, lse = cross_entropy_rows_numpy(logits, t, w, label_smoothing)  # (N,), (N,)
    if reduction == "none":
        return rows, lse
    total = rows.sum()
    if reduction == "mean":
        denominator = _denominator(t, w)
        total = total / denominator if denominator else np.nan
    return np.asarray(total, dtype=logits.dtype), lse


def cross_entropy_backward(grad, logits, target, lse, ignore_index=-100, label_smoothing=0.0, reduction="mean",
                           weight=None):
    """Gradient of cross_entropy_forward: grad (a scalar, or (N,) for "none") -> dlogits (N, V)."""
    logits, t, w = _prepare("cross_entropy_backward", logits, target, ignore_index, label_smoothing, reduction, weight)
    n = logits.shape[0]
    grad = np.asarray(grad, dtype=logits.dtype)
    if reduction == "none" and grad.shape != (n,):
        raise ValueError(f"cross_entropy_backward: reduction='none' needs grad of shape ({n},), got {grad.shape}")
    if reduction != "none" and grad.size != 1:
        raise ValueError(f"cross_entropy_backward: reduction={reduction!r} needs a scalar grad, got {grad.shape}")
    if reduction == "mean":
        denominator = _denominator(t, w)
        grad = grad / denominator if denominator else np.zeros_like(grad)  # nothing counted: no gradient
    row_grad = np.broadcast_to(grad.reshape(-1), (n,)).astype(logits.dtype)  # (N,) dL/dloss_i
    lse = np.ascontiguousarray(lse, dtype=logits.dtype)
    if get_backend() == "numba":
        return cross_entropy_grad_numba(row_grad, logits, t, w, lse, float(label_smoothing), logits.dtype != np.float32)
    return cross_entropy_grad_numpy(row_grad, logits, t, w, lse, label_smoothing)
