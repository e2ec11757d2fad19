"""Reductions over axes: sum, mean, max, var.

Backward of a reduction spreads each output's gradient back over the inputs
that were reduced into it, so the first step is always to put the reduced
axes back (``_expand``) and broadcast to the input's shape.
"""

import builtins

import numpy as np

from .function import Function


def normalize_axes(axis, ndim, op="reduction"):
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % builtins.max(ndim, 1))
    return tuple(sorted(set(out)))


def _expand(grad, axes, keepdims, shape):
    """Broadcast a reduced gradient back to ``shape``."""
    if not keepdims:
        grad = np.expand_dims(grad, axes)
    return np.broadcast_to(grad, shape)


class Sum(Function):
    """y = sum_i x_i over the axes;  dy/dx_i = 1."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes, ctx.keepdims, ctx.shape = normalize_axes(axis, x.ndim, "sum"), keepdims, x.shape
        return np.sum(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _expand(grad, ctx.axes, ctx.keepdims, ctx.shape)


class Mean(Function):
    """y = (1/N) sum_i x_i;  dy/dx_i = 1/N."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes, ctx.keepdims, ctx.shape = normalize_axes(axis, x.ndim, "mean"), keepdims, x.shape
        ctx.n = int(np.prod([x.shape[a] for a in ctx.axes]))
        return np.mean(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _expand(grad / ctx.n, ctx.axes, ctx.keepdims, ctx.shape)


class Max(Function):
    """y = max_i x_i;  dy/dx_i = 1 at the maximum, 0 elsewhere.

    When several elements tie for the maximum, the gradient is shared equally
    among them (like ``torch.amax``).
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        if x.size == 0:
            raise ValueError(f"max: cannot reduce an empty tensor of shape {x.shape}")
        ctx.axes, ctx.keepdims, ctx.x = normalize_axes(axis, x.ndim, "max"), keepdims, x
        ctx.y = np.max(x, axis=ctx.axes, keepdims=True)
        return ctx.y if keepdims else np.squeeze(ctx.y, axis=ctx.axes)

    @staticmethod
    def backward(ctx, grad):
        is_max = ctx.x == ctx.y
        share = is_max / is_max.sum(axis=ctx.axes, keepdims=True)
        g = grad if ctx.keepdims else np.expand_dims(grad, ctx.axes)
        return (g * share).astype(ctx.x.dtype, copy=False)


class Var(Function):
    """y = sum_i (x_i - mean)^2 / (N - correction);  dy/dx_i = 2 (x_i - mean) / (N - correction).

    ``correction=1`` (the default, as in PyTorch) is the unbiased estimate;
    ``correction=0`` the population variance that LayerNorm uses.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, correction=1):
        axes = normalize_axes(axis, x.ndim, "var")
        n = int(np.prod([x.shape[a] for a in axes]))
        if n - correction <= 0:
            raise ValueError(f"var: {n} elements with correction={correction} leave no degrees of freedom")
        ctx.axes, ctx.keepdims, ctx.denominator = axes, keepdims, n - correction
        ctx.centered = x - x.mean(axis=axes, keepdims=True)
        return np.sum(ctx.centered**2, axis=axes, keepdims=keepdims) / ctx.denominator

    @staticmethod
    def backward(ctx, grad):
        g = grad if ctx.keepdims else np.expand_dims(grad, ctx.axes)
        return g * (2 / ctx.denominator) * ctx.centered


def sum(x, axis=None, keepdims=False):  # noqa: A001 - mirrors numpy.sum / torch.sum
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return Max.apply(x, axis=axis, keepdims=keepdims)


def var(x, axis=None, keepdims=False, correction=1):
    return Var.apply(x, axis=axis, keepdims=keepdims, correction=correction)
