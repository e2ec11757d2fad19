r"""GELU, the Gaussian Error Linear Unit (Hendrycks & Gimpel 2016), forward and backward.

    exact:  y = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2,   dy/dx = Phi(x) + x phi(x)
    tanh:   y = x (1 + t) / 2,  t = tanh(sqrt(2/pi) (x + 0.044715 x^3)),
            dy/dx = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2

phi(x) = exp(-x^2 / 2) / sqrt(2 pi) is the standard normal density. The
backward recomputes Phi or t from x, so the forward saves nothing but x.
``approximate`` is "none" or "tanh", as in ``torch.nn.functional.gelu``.
"""

import math

import numpy as np

from .backend import get_backend
from .jit import REASSOCIATE, numba_kernel, prange
from .vector_math import erf as vector_erf
from .vector_math import erf_array as erf
from .vector_math import exp as vector_exp

SQRT_HALF = math.sqrt(0.5)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
TANH_COEF = 0.044715


def gelu_forward_numpy(x, approximate):
    if approximate == "tanh":
        t = np.tanh(SQRT_2_OVER_PI * (x + TANH_COEF * x**3))
        return 0.5 * x * (1 + t)
    return x * (0.5 * (1 + erf(x * SQRT_HALF)))


def gelu_backward_numpy(grad, x, approximate):
    if approximate == "tanh":
        t = np.tanh(SQRT_2_OVER_PI * (x + TANH_COEF * x**3))
        du = SQRT_2_OVER_PI * (1 + 3 * TANH_COEF * x * x)
        return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
    cdf = 0.5 * (1 + erf(x * SQRT_HALF))
    pdf = INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return grad * (cdf + x * pdf)


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def gelu_forward_numba(x, use_tanh, exact):
    """x flat (n,) -> y (n,); ``use_tanh`` selects the tanh form, ``exact`` the C library's erf."""
    y = np.empty_like(x)
    for i in prange(x.size):
        v = x[i]
        if use_tanh:
            y[i] = 0.5 * v * (1.0 + math.tanh(SQRT_2_OVER_PI * (v + TANH_COEF * v * v * v)))
        else:
            y[i] = 0.5 * v * (1.0 + vector_erf(v * SQRT_HALF, exact))
    return y


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def gelu_backward_numba(grad, x, use_tanh, exact):
    """grad, x flat (n,) -> dx (n,)."""
    dx = np.empty_like(x)
    for i in prange(x.size):
        v = x[i]
        if use_tanh:
            t = math.tanh(SQRT_2_OVER_PI * (v + TANH_COEF * v * v * v))
            du = SQRT_2_OVER_PI * (1.0 + 3.0 * TANH_COEF * v * v)
            dx[i] = grad[i] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du)
        else:
            cdf = 0.5 * (1.0 + vector_erf(v * SQRT_HALF, exact))
            pdf = INV_SQRT_2PI * vector_exp(-0.5 * v * v, exact)
            dx[i] = grad[i] * (cdf + v * pdf)
    return dx


BLOCK = 1 << 17  # elements per block for in_blocks: 512 KiB of float32, inside a core's L2 cache


def in_blocks(fn, *arrays, width=None):
    """``fn(*arrays)`` for an elementwise ``fn``, computed BLOCK elements at a time into one result.

    How the NumPy backend runs the twins above. A NumPy expression like
    ``x * (1 + erf(x))`` makes a temporary array per operation; on a whole
    (4096, 1536) activation each one streams 25 MB through main memory. On
    blocks of 128K elements the temporaries stay in the cache (measured: GELU's
    forward and backward 2.7x faster). ``arrays`` share one shape; the result
    is a new array of that shape and the first's dtype. With ``width``, the
    arrays are matrices (N, width) and every block is whole rows, so ``fn``
    may add a (width,) vector to its blocks.
    """
    shape = np.shape(arrays[0])
    if width is None:  # blocks of BLOCK elements of the flat (n,) views (no copies when already contiguous)
        flat, step = [np.ascontiguousarray(a).reshape(-1) for a in arrays], BLOCK
    else:  # blocks of whole rows
        flat, step = [np.ascontiguousarray(a) for a in arrays], max(1, BLOCK // max(width, 1))
    out = np.empty_like(flat[0])
    for start in range(0, len(out), step):
        block = slice(start, start + step)
        out[block] = fn(*(a[block] for a in flat))
    return out.reshape(shape)


def _check(name, x, approximate):
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: x must be a float array, got {x.dtype}")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{name}: approximate must be 'none' or 'tanh', got {approximate!r}")
    return x


def gelu_forward(x, approximate="none"):
    """y = GELU(x), elementwise, for x of any shape."""
    x = _check("gelu_forward", x, approximate)
    if get_backend() == "numba":
        flat = np.ascontiguousarray(x).reshape(-1)  # (n,)
        return gelu_forward_numba(flat, approximate == "tanh", x.dtype != np.float32).reshape(x.shape)
    return in_blocks(lambda a: gelu_forward_numpy(a, approximate), x)


def gelu_backward(grad, x, approximate="none"):
    """dL/dx = dL/dy * GELU'(x), for grad and x of the same shape."""
    x = _check("gelu_backward", x, approximate)
    if np.shape(grad) != x.shape:
        raise ValueError(f"gelu_backward: grad has shape {np.shape(grad)} but x has {x.shape}")
    if get_backend() == "numba":
        flat_x = np.ascontiguousarray(x).reshape(-1)  # (n,)
        flat_g = np.ascontiguousarray(grad, dtype=x.dtype).reshape(-1)  # (n,)
        return gelu_backward_numba(flat_g, flat_x, approximate == "tanh", x.dtype != np.float32).reshape(x.shape)
    return in_blocks(lambda a, g: gelu_backward_numpy(g, a, approximate), x, np.asarray(grad, dtype=x.dtype))


# ------------------------------------------------------------------ bias + GELU, fused
# The MLP's first half, y = GELU(x W^T + b), as one op. The product a = x W^T stays BLAS's; the
# bias add joins the GELU's pass (measured, one thread: config B's (4096, 1536) 4.1 ms against
# 5.2 for the add and GELU apart; A's (768, 512) 0.24 against 0.28). h = a + b is never written
# to memory: the backward adds b to a again, in a register.

def bias_gelu_forward_numpy(a, bias, approximate):
    return gelu_forward_numpy(a + bias, approximate)  # h = a + b, y = GELU(h)


def bias_gelu_backward_numpy(grad, a, bias, approximate):
    dh = gelu_backward_numpy(grad, a + bias, approximate)  # dL/dh = dL/dy * GELU'(h)
    return dh, dh.sum(axis=0)  # dL/da = dL/dh; dL/db = dL/dh summed over the rows


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def bias_gelu_forward_numba(a, bias, use_tanh, exact):
    """a (N, H), bias (H,) -> y = GELU(a + bias) (N, H)."""
    y = np.empty_like(a)
    for i in prange(a.shape[0]):
        for j in range(a.shape[1]):
            v = a[i, j] + bias[j]
            if use_tanh:  # gelu_forward_numba's formulas, written out again: a call would keep LLVM from vectorising
                y[i, j] = 0.5 * v * (1.0 + math.tanh(SQRT_2_OVER_PI * (v + TANH_COEF * v * v * v)))
            else:
                y[i, j] = 0.5 * v * (1.0 + vector_erf(v * SQRT_HALF, exact))
    return y


@numba_kernel(parallel=True, fastmath=REASSOCIATE)
def bias_gelu_backward_numba(grad, a, bias, use_tanh, exact):
    """grad, a (N, H), bias (H,) -> dh = grad * GELU'(a + bias) (N, H); the caller sums db = dh's rows.

    Summing db here too, in per-block partial sums, measured no faster than NumPy's
    dh.sum(axis=0) after it (config A's (768, 512): 0.52 ms against 0.50; B's (4096, 1536):
    8.4 against 8.2), so the simpler loop stays."""
    dh = np.empty_like(a)
    for i in prange(a.shape[0]):
        for j in range(a.shape[1]):
            v = a[i, j] + bias[j]
            if use_tanh:  # gelu_backward_numba's formulas
                t = math.tanh(SQRT_2_OVER_PI * (v + TANH_COEF * v * v * v))
                du = SQRT_2_OVER_PI * (1.0 + 3.0 * TANH_COEF * v * v)
                dh[i, j] = grad[i, j] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du)
            else:
                cdf = 0.5 * (1.0 + vector_erf(v * SQRT_HALF, exact))
                pdf = INV_SQRT_2PI * vector_exp(-0.5 * v * v, exact)
                dh[i, j] = grad[i, j] * (cdf + v * pdf)
    return dh


def _check_bias(name, a, bias):
    if a.ndim != 2:
        raise ValueError(f"{name}: a must be a matrix (N, H), got shape {a.shape}")
    if np.shape(bias) != a.shape[1:]:
        raise ValueError(f"{name}: bias has shape {np.shape(bias)} but a has {a.shape}; it must be ({a.shape[1]},)")
    return np.ascontiguousarray(a), np.ascontiguousarray(bias, dtype=a.dtype)


def bias_gelu_forward(a, bias, approximate="none"):
    """y = GELU(a + bias) for a (N, H) (x W^T, say) and bias (H,), without h = a + bias in memory."""
    a, bias = _check_bias("bias_gelu_forward", _check("bias_gelu_forward", a, approximate), bias)
    if get_backend() == "numba":
        return bias_gelu_forward_numba(a, bias, approximate == "tanh", a.dtype != np.float32)
    return in_blocks(lambda rows: bias_gelu_forward_numpy(rows, bias, approximate), a, width=a.shape[1])


def bias_gelu_backward(grad, a, bias, approximate="none"):
    """(dL/da, dL/dbias) for y = GELU(a + bias): dL/da = grad * GELU'(a + bias), dL/dbias its sum over rows."""
    a, bias = _check_bias("bias_gelu_backward", _check("bias_gelu_backward", a, approximate), bias)
    if np.shape(grad) != a.shape:
        raise ValueError(f"bias_gelu_backward: grad has shape {np.shape(grad)} but a has {a.shape}")
    grad = np.ascontiguousarray(grad, dtype=a.dtype)
    if get_backend() == "numba":
        dh = bias_gelu_backward_numba(grad, a, bias, approximate == "tanh", a.dtype != np.float32)
        return dh, dh.sum(axis=0)
    dh, db = np.empty_like(a), np.zeros_like(bias)  # the twin on blocks of rows, as in_blocks does
    step = max(1, BLOCK // max(a.shape[1], 1))
    for start in range(0, len(a), step):
        rows = slice(start, start + step)
        dh[rows], db_rows = bias_gelu_backward_numpy(grad[rows], a[rows], bias, approximate)
        db += db_rows
    return dh, db
