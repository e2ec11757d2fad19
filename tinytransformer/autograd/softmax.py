"""Softmax and its relatives, computed stably by subtracting the maximum first.

softmax(x)_i = e^(x_i - m) / sum_j e^(x_j - m)    with m = max_j x_j

Subtracting m changes nothing mathematically (it cancels) but keeps every
exponent <= 0, so e^(...) never overflows, even for logits of 1e4.
"""

import numpy as np

from .function import Function
from .reductions import normalize_axes


def _shifted(x, axis):
    """x - max(x) along ``axis`` (a row of all -inf stays -inf rather than NaN)."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype, copy=False)
    return x - m, m


class Softmax(Function):
    """y = softmax(x);  dL/dx = y * (dL/dy - sum_j dL/dy_j y_j)."""

    @staticmethod
    def forward(ctx, x, axis=-1):
        axis = normalize_axes(axis, x.ndim, "softmax")
        z, _ = _shifted(x, axis)
        e = np.exp(z)
        y = e / e.sum(axis=axis, keepdims=True)
        ctx.y, ctx.axis = y, axis
        return y

    @staticmethod
    def backward(ctx, grad):
        y = ctx.y
        return y * (grad - (grad * y).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - logsumexp(x);  dL/dx = dL/dy - softmax(x) * sum_j dL/dy_j."""

    @staticmethod
    def forward(ctx, x, axis=-1):
        axis = normalize_axes(axis, x.ndim, "log_softmax")
        z, _ = _shifted(x, axis)
        y = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
        ctx.y, ctx.axis = y, axis
        return y

    @staticmethod
    def backward(ctx, grad):
        return grad - np.exp(ctx.y) * grad.sum(axis=ctx.axis, keepdims=True)


class LogSumExp(Function):
    """y = log sum_j e^(x_j);  dy/dx_i = softmax(x)_i."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        axes = normalize_axes(axis, x.ndim, "logsumexp")
        z, m = _shifted(x, axes)
        y = np.log(np.exp(z).sum(axis=axes, keepdims=True)) + m  # keepdims form, for backward
        ctx.x, ctx.y, ctx.axes, ctx.keepdims = x, y, axes, keepdims
        return y if keepdims else np.squeeze(y, axis=axes)

    @staticmethod
    def backward(ctx, grad):
        g = grad if ctx.keepdims else np.expand_dims(grad, ctx.axes)
        return g * np.exp(ctx.x - ctx.y)


def softmax(x, axis=-1):
    return Softmax.apply(x, axis=axis)


def log_softmax(x, axis=-1):
    return LogSoftmax.apply(x, axis=axis)


def logsumexp(x, axis=None, keepdims=False):
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)
