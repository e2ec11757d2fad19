r"""Layer normalisation (Ba, Kiros & Hinton 2016) over the last axis, forward and backward.

For one row x of C values:

    mean = sum(x) / C,   var = sum((x - mean)^2) / C,   rstd = 1 / sqrt(var + eps)
    xhat = (x - mean) * rstd,   y = weight * xhat + bias

Backward, with g = weight * dL/dy (the gradient reaching xhat):

    dL/dx      = rstd * (g - mean(g) - xhat * mean(g * xhat))     (per row)
    dL/dweight = sum over rows of dL/dy * xhat
    dL/dbias   = sum over rows of dL/dy

The forward returns ``mean`` and ``rstd`` (one number per row) so that the
backward recomputes xhat instead of keeping a second (N, C) array.
"""

import numpy as np

from .backend import get_backend
from .jit import REASSOCIATE, numba_kernel, prange

N_CHUNKS = 32  # the backward sums dweight and dbias over this many row blocks in parallel


def layer_norm_forward_numpy(x, weight, bias, eps):
    """x (N, C), weight (C,), bias (C,) -> y (N, C), mean (N,), rstd (N,)."""
    mean = x.mean(axis=-1, keepdims=True)  # (N, 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (N, 1)
    rstd = 1 / np.sqrt(var + eps)  # (N, 1)
    xhat = (x - mean) * rstd  # (N, C)
    y = xhat * weight + bias  # (N, C)
    return y, mean[:, 0], rstd[:, 0]


def layer_norm_backward_numpy(grad, x, weight, mean, rstd):
    """grad (N, C), x (N, C), weight (C,), mean (N,), rstd (N,) -> dx (N, C), dweight (C,), dbias (C,)."""
    mean, rstd = mean[:, None], rstd[:, None]  # (N, 1)
    xhat = (x - mean) * rstd  # (N, C), recomputed
    g = grad * weight  # (N, C): dL/dxhat
    dx = (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True)) * rstd  # (N, C)
    dweight = (grad * xhat).sum(axis=0)  # (C,)
    dbias = grad.sum(axis=0)  # (C,)
    return dx, dweight, dbias


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def layer_norm_forward_numba(x, weight, bias, eps):
    """The same as layer_norm_forward_numpy, one row per parallel iteration, sums in float64.

    Each row is read three times (sum, sum of squares, output) straight from x:
    no (N, C) temporary for x - mean or xhat, which the NumPy twin makes.
    """
    n, c = x.shape
    y = np.empty_like(x)
    mean = np.empty(n, dtype=x.dtype)
    rstd = np.empty(n, dtype=x.dtype)
    for i in prange(n):
        xi, yi = x[i], y[i]  # (C,), (C,)
        s = 0.0
        for j in range(c):
            s += xi[j]
        m = s / c
        ss = 0.0
        for j in range(c):
            d = xi[j] - m
            ss += d * d
        r = 1.0 / np.sqrt(ss / c + eps)
        for j in range(c):
            yi[j] = (xi[j] - m) * r * weight[j] + bias[j]
        mean[i] = m
        rstd[i] = r
    return y, mean, rstd


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def layer_norm_backward_numba(grad, x, weight, mean, rstd):
    """The same as layer_norm_backward_numpy.

    dx is computed one row per parallel iteration. dweight and dbias sum over
    rows, which parallel iterations must not do into one shared array (two
    threads adding to the same element lose updates): each of N_CHUNKS row
    blocks sums into its own row of ``partial``, and the blocks are added at
    the end, in a fixed order, so the result does not depend on the threads.
    """
    n, c = x.shape
    dx = np.empty_like(x)
    n_chunks = min(N_CHUNKS, n)
    rows_per_chunk = (n + n_chunks - 1) // n_chunks
    partial_w = np.zeros((n_chunks, c), dtype=np.float64)
    partial_b = np.zeros((n_chunks, c), dtype=np.float64)
    for chunk in prange(n_chunks):
        for i in range(chunk * rows_per_chunk, min(n, (chunk + 1) * rows_per_chunk)):
            m = mean[i]
            r = rstd[i]
            sum_g = 0.0
            sum_gx = 0.0
            for j in range(c):
                xhat = (x[i, j] - m) * r
                g = grad[i, j] * weight[j]
                sum_g += g
                sum_gx += g * xhat
                partial_w[chunk, j] += grad[i, j] * xhat
                partial_b[chunk, j] += grad[i, j]
            mean_g = sum_g / c
            mean_gx = sum_gx / c
            for j in range(c):
                xhat = (x[i, j] - m) * r
                dx[i, j] = r * (grad[i, j] * weight[j] - mean_g - xhat * mean_gx)
    dweight = np.empty(c, dtype=x.dtype)
    dbias = np.empty(c, dtype=x.dtype)
    for j in range(c):
        sw = 0.0
        sb = 0.0
        for chunk in range(n_chunks):
            sw += partial_w[chunk, j]
            sb += partial_b[chunk, j]
        dweight[j] = sw
        dbias[j] = sb
    return dx, dweight, dbias


def _rows(name, x, weight, bias):
    """Check shapes and make contiguous (N, C) arrays of x's dtype; None weight/bias become 1/0."""
    x = np.asarray(x)
    if x.ndim < 1 or x.dtype.kind != "f":
        raise TypeError(f"{name}: x must be a float array of shape (..., C), got {x.dtype} of shape {x.shape}")
    c = x.shape[-1]
    weight = np.ones(c, x.dtype) if weight is None else weight
    bias = np.zeros(c, x.dtype) if bias is None else bias
    for arg, a in (("weight", weight), ("bias", bias)):
        if np.shape(a) != (c,):
            raise ValueError(f"{name}: {arg} has shape {np.shape(a)} but x has C={c} (x: {x.shape})")
    as_rows = lambda a: np.ascontiguousarray(a, dtype=x.dtype)
    return as_rows(x.reshape(-1, c)), as_rows(weight), as_rows(bias)


def layer_norm_forward(x, weight=None, bias=None, eps=1e-5):
    """LayerNorm over the last axis: x (..., C) -> y (..., C), mean (...), rstd (...).

    ``weight``/``bias`` of shape (C,) or None (1 and 0). Keep ``mean`` and
    ``rstd`` for ``layer_norm_backward``.
    """
    x2, w, b = _rows("layer_norm_forward", x, weight, bias)  # (N, C), (C,), (C,)
    impl = layer_norm_forward_numba if get_backend() == "numba" else layer_norm_forward_numpy
    y, mean, rstd = impl(x2, w, b, float(eps))
    return y.reshape(np.shape(x)), mean.reshape(np.shape(x)[:-1]), rstd.reshape(np.shape(x)[:-1])


def layer_norm_backward(grad, x, weight, mean, rstd):
    """Gradients of layer_norm_forward: grad (..., C) -> dx (..., C), dweight (C,), dbias (C,)."""
    x2, w, _ = _rows("layer_norm_backward", x, weight, None)  # (N, C), (C,)
    if np.shape(grad) != np.shape(x):
        raise ValueError(f"layer_norm_backward: grad has shape {np.shape(grad)} but x has {np.shape(x)}")
    g2 = np.ascontiguousarray(np.reshape(grad, x2.shape), dtype=x2.dtype)  # (N, C)
    m, r = (np.ascontiguousarray(np.reshape(a, -1), dtype=x2.dtype) for a in (mean, rstd))  # (N,)
    impl = layer_norm_backward_numba if get_backend() == "numba" else layer_norm_backward_numpy
    dx, dweight, dbias = impl(g2, x2, w, m, r)
    return dx.reshape(np.shape(x)), dweight, dbias
