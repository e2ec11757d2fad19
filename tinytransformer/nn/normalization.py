"""Normalisation layers: LayerNorm (Ba, Kiros & Hinton 2016) and RMSNorm (Zhang & Sennrich 2019).

Both rescale each vector over its last axes (``normalized_shape``, usually
just the embedding axis C) so that its scale is fixed, then apply a learned
per-feature gain (and, for LayerNorm, a shift):

    LayerNorm:  y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias
    RMSNorm:    y = x / sqrt(mean(x^2) + eps) * weight

``var`` is the population variance (divide by n, not n - 1), as in PyTorch.
``layer_norm`` is one fused Function with a hand-derived backward pass (it is
on every Transformer's hot path); ``layer_norm_composed`` builds the same
function from autograd primitives, and the tests check that the two agree.
"""

import math

import numpy as np

from .. import kernels
from ..autograd import Function, as_array
from ..validation import check_value
from .module import Module, Parameter


def _as_shape(normalized_shape):
    return (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)


def _layer_shape(name, normalized_shape):
    """A layer's ``normalized_shape`` (an int, or a sequence of them) as a tuple of positive ints."""
    dims = normalized_shape if isinstance(normalized_shape, (tuple, list)) else (normalized_shape,)
    return tuple(check_value(f"{name}: normalized_shape", n, int, "[1, inf)") for n in dims)


def _check(name, input, normalized_shape, weight, bias=None):
    """Validate shapes; return ``normalized_shape`` as a tuple."""
    shape = _as_shape(normalized_shape)
    x_shape = np.shape(as_array(input))
    if len(x_shape) < len(shape) or x_shape[len(x_shape) - len(shape):] != shape:
        raise ValueError(
            f"{name}: input of shape {x_shape} does not end in normalized_shape {shape} "
            f"(is the embedding dimension right?)"
        )
    for arg, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{name}: {arg} has shape {tuple(t.shape)} but normalized_shape is {shape}")
    return shape


class LayerNormFunction(Function):
    r"""Fused LayerNorm over the last axes, flattened into one axis of n = prod(normalized_shape).

    Forward, for one row x of n values:

        mu = mean(x),  sigma^2 = mean((x - mu)^2),  r = 1 / sqrt(sigma^2 + eps)
        xhat = (x - mu) r,  y = w * xhat + b

    Backward. Let g = dL/dxhat = w * dL/dy. Since d mu/dx_j = 1/n and
    d sigma^2/dx_j = 2 (x_j - mu)/n, we get dr/dx_j = -r^3 (x_j - mu)/n = -r^2 xhat_j/n, so

        d xhat_i / d x_j = r (delta_ij - 1/n) - r xhat_i xhat_j / n

    and summing g_i times that over i:

        dL/dx = r (g - mean(g) - xhat * mean(g * xhat))          (per row)
        dL/dw = sum over rows of dL/dy * xhat,   dL/db = sum over rows of dL/dy

    The arithmetic is ``kernels.layer_norm_forward`` and ``_backward``
    (kernels/layernorm.py, NumPy or Numba): the forward saves the mean and r of
    each row, and the backward recomputes xhat from x.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, normalized_shape, eps):
        n = math.prod(normalized_shape)
        rows = x.reshape(-1, n)  # (M, n), M = all leading axes
        w = None if weight is None else weight.reshape(n)
        y, mean, rstd = kernels.layer_norm_forward(rows, w, None if bias is None else bias.reshape(n), eps)
        ctx.rows, ctx.w, ctx.mean, ctx.rstd, ctx.normalized_shape = rows, w, mean, rstd, normalized_shape
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        rows, shape = ctx.rows, ctx.normalized_shape
        gx, gw, gb = kernels.layer_norm_backward(grad.reshape(rows.shape), rows, ctx.w, ctx.mean, ctx.rstd)
        return (gx.reshape(grad.shape) if need_x else None, gw.reshape(shape) if need_w else None,
                gb.reshape(shape) if need_b else None, None, None)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """LayerNorm over the trailing ``normalized_shape`` axes, fused (``torch.nn.functional.layer_norm``)."""
    shape = _check("layer_norm", input, normalized_shape, weight, bias)
    return LayerNormFunction.apply(input, weight, bias, shape, eps)


def layer_norm_composed(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """The same LayerNorm written with autograd primitives: the readable reference for ``layer_norm``."""
    shape = _check("layer_norm_composed", input, normalized_shape, weight, bias)
    axes = tuple(range(-len(shape), 0))
    mean = input.mean(axis=axes, keepdims=True)
    var = input.var(axis=axes, keepdims=True, correction=0)
    y = (input - mean) / (var + eps).sqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """y = x / sqrt(mean(x^2) + eps) * weight over the trailing axes (``torch.nn.functional.rms_norm``).

    ``eps=None`` means the machine epsilon of the input's dtype, as in PyTorch.
    Built from autograd primitives: RMSNorm has no mean to subtract, so its
    graph is short enough to need no fused form.
    """
    shape = _check("rms_norm", input, normalized_shape, weight)
    eps = float(np.finfo(input.dtype).eps) if eps is None else eps
    axes = tuple(range(-len(shape), 0))
    y = input / ((input * input).mean(axis=axes, keepdims=True) + eps).sqrt()
    return y * weight if weight is not None else y


class LayerNorm(Module):
    """Normalise the trailing ``normalized_shape`` axes to mean 0, variance 1, then scale and shift.

    ``weight`` starts at ones and ``bias`` at zeros; ``elementwise_affine=False``
    drops both, ``bias=False`` only the shift.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float32):
        super().__init__()
        self.normalized_shape = _layer_shape("LayerNorm", normalized_shape)
        self.eps, self.elementwise_affine = check_value("LayerNorm: eps", eps, float, "(0, inf)"), elementwise_affine
        affine = elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype)) if affine and bias else None

    def forward(self, input):
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def infer(self, x):
        """``forward`` on an array, outside autograd (generation's inference path): the same kernel, no graph."""
        n = math.prod(self.normalized_shape)
        w = None if self.weight is None else self.weight.data.reshape(n)
        b = None if self.bias is None else self.bias.data.reshape(n)
        y, _, _ = kernels.layer_norm_forward(x.reshape(-1, n), w, b, self.eps)  # (M, n); mean and rstd: backward's
        return y.reshape(x.shape)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class RMSNorm(Module):
    """Divide by the root mean square over the trailing axes, then scale (``weight`` starts at ones)."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, dtype=np.float32):
        super().__init__()
        self.normalized_shape = _layer_shape("RMSNorm", normalized_shape)
        self.eps = check_value("RMSNorm: eps", eps, float, "(0, inf)", optional=True)  # None: the dtype's epsilon
        self.elementwise_affine = elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype)) if elementwise_affine else None

    def forward(self, input):
        return rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
