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


def in_blocks(fn, *arrays):
    """``fn(*arrays)`` for an elementwise ``fn``, computed BLOCK elements at a time into one result.

    How the NumPy backend runs the twins above. A NumPy expression like
    ``x * (1 + erf(x))`` makes a temporary array per operation; on a whole
    (4096, 1536) activation each one streams 25 MB through main memory. On
    blocks of 128K elements the temporaries stay in the cache (measured: GELU's
    forward and backward 2.7x faster). ``arrays`` share one shape; the result
    is a new array of that shape and the first's dtype.
    """
    flat = [np.ascontiguousarray(a).reshape(-1) for a in arrays]  # (n,) views when already contiguous
    out = np.empty_like(flat[0])
    for start in range(0, out.size, BLOCK):
        block = slice(start, start + BLOCK)
        out[block] = fn(*(a[block] for a in flat))
    return out.reshape(np.shape(arrays[0]))


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
