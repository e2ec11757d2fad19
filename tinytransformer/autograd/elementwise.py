"""Elementwise functions: y = f(x), so dL/dx = dL/dy * f'(x), elementwise."""

import numpy as np

from .. import kernels
from .function import Function

class Exp(Function):
    """y = e^x;  dy/dx = e^x = y."""

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.y = y
        return y

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.y


class Log(Function):
    """y = ln x;  dy/dx = 1/x."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        return grad / ctx.x


class Sqrt(Function):
    """y = sqrt(x);  dy/dx = 1 / (2 sqrt(x)) = 1 / (2y)."""

    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.y = y
        return y

    @staticmethod
    def backward(ctx, grad):
        return grad / (2 * ctx.y)


class Tanh(Function):
    """y = tanh x;  dy/dx = 1 - y^2."""

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.y = y
        return y

    @staticmethod
    def backward(ctx, grad):
        return grad * (1 - ctx.y * ctx.y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x);  dy/dx = y (1 - y).

    Computed as exp(-log(1 + e^-x)) so neither large positive nor large
    negative x overflows, and tiny outputs keep their relative precision.
    """

    @staticmethod
    def forward(ctx, x):
        y = np.exp(-np.logaddexp(0, -x)).astype(x.dtype, copy=False)
        ctx.y = y
        return y

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.y * (1 - ctx.y)


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0 (0 at x = 0, as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ctx.positive = x > 0
        return np.where(ctx.positive, x, 0).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.positive


class GELU(Function):
    """Gaussian Error Linear Unit (Hendrycks & Gimpel 2016): y = x Phi(x).

    exact:  Phi(x) = (1 + erf(x / sqrt 2)) / 2,  dy/dx = Phi(x) + x phi(x)
    tanh:   y = x (1 + tanh(u)) / 2 with u = sqrt(2/pi) (x + 0.044715 x^3),
            dy/dx = (1 + t)/2 + x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2
    where phi is the standard normal density and t = tanh(u). The arithmetic
    is ``kernels.gelu_forward`` and ``_backward`` (kernels/gelu.py, NumPy or
    Numba); the backward recomputes Phi from x rather than keep it.
    """

    @staticmethod
    def forward(ctx, x, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        ctx.x, ctx.approximate = x, approximate
        return kernels.gelu_forward(x, approximate)

    @staticmethod
    def backward(ctx, grad):
        return kernels.gelu_backward(grad, ctx.x, ctx.approximate)


class AsType(Function):
    """y = x cast to another dtype; the gradient is cast back."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.dtype), None


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def tanh(x):
    return Tanh.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def relu(x):
    return ReLU.apply(x)


def gelu(x, approximate="none"):
    return GELU.apply(x, approximate=approximate)


def astype(x, dtype):
    return AsType.apply(x, np.dtype(dtype))
