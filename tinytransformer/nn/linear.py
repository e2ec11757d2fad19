"""The affine layer: y = x W^T + b.

``W`` has shape (out_features, in_features), PyTorch's layout, so weights load
across unchanged. For x of shape (..., in) the backward pass is

    dL/dx = dL/dy @ W            (..., in)
    dL/dW = (dL/dy)^T @ x        (out, in), summed over every leading axis
    dL/db = sum of dL/dy         (out,)

written as one Function so the leading axes are folded into one big matrix
multiplication instead of a transpose op plus a batched product (NumPy runs
a (B, T, in) @ (in, out) product as B separate ones, 10-25% slower).

``linear_gelu`` is a Linear and a GELU as one op, the first half of the
Transformer's MLP (``LinearGELUFunction``; ``nn/blocks.py`` uses it).
"""

import math

import numpy as np

from .. import kernels
from ..autograd import Function
from ..rng import get_rng
from ..validation import check_value
from .module import Module, Parameter, initial_weights


class LinearFunction(Function):
    @staticmethod
    def forward(ctx, x, weight, bias=None):
        _check_features(x, weight)
        ctx.x, ctx.weight = x, weight
        y = (x.reshape(-1, x.shape[-1]) @ weight.T).reshape(*x.shape[:-1], weight.shape[0])  # (N, in) @ (in, out) -> (..., out)
        if bias is not None:
            y += bias
        return y

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.x, ctx.weight
        need_x, need_w, need_b = (ctx.needs_input_grad + (False,))[:3]
        g2 = grad.reshape(-1, grad.shape[-1])  # (N, out), N = all leading axes
        gx = (g2 @ w).reshape(x.shape) if need_x else None  # (..., in)
        gw = (g2.T @ x.reshape(-1, x.shape[-1])) if need_w else None  # (out, in)
        gb = g2.sum(axis=0) if need_b else None  # (out,)
        return gx, gw, gb


class LinearGELUFunction(Function):
    """y = GELU(x W^T + b): a Linear and the GELU after it as one op (the MLP's first half).

    Forward: a = x W^T (BLAS), then y = GELU(a + b) in one pass (``kernels.bias_gelu_forward``).
    Backward, with h = a + b:

        dL/dh = dL/dy * GELU'(h)     (..., out)   ``kernels.bias_gelu_backward``, which also sums
        dL/db = sum of dL/dh         (out,)       its rows in the same pass
        dL/dx = dL/dh @ W            (..., in)
        dL/dW = (dL/dh)^T @ x        (out, in)

    It saves a (not h: the backward adds b again), and makes one graph node where the
    composition makes two, with no pass of its own for the bias.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, approximate="none"):
        _check_features(x, weight)
        x2 = x.reshape(-1, x.shape[-1])  # (N, in)
        a = x2 @ weight.T  # (N, out)
        if bias is None:
            bias = np.zeros(weight.shape[0], dtype=a.dtype)
        ctx.x, ctx.weight, ctx.a, ctx.bias, ctx.approximate = x, weight, a, bias, approximate
        return kernels.bias_gelu_forward(a, bias, approximate).reshape(*x.shape[:-1], weight.shape[0])  # (..., out)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.x, ctx.weight
        need_x, need_w, need_b = (ctx.needs_input_grad + (False,))[:3]
        dh, db = kernels.bias_gelu_backward(grad.reshape(ctx.a.shape), ctx.a, ctx.bias, ctx.approximate)  # (N, out), (out,)
        gx = (dh @ w).reshape(x.shape) if need_x else None  # (..., in)
        gw = (dh.T @ x.reshape(-1, x.shape[-1])) if need_w else None  # (out, in)
        return gx, gw, (db if need_b else None)


def _check_features(x, weight):
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has {x.shape[-1]} features (shape {x.shape}) but the weight expects "
            f"{weight.shape[1]} (weight shape {weight.shape})"
        )


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias (``torch.nn.functional.linear``)."""
    if bias is None:
        return LinearFunction.apply(x, weight)
    return LinearFunction.apply(x, weight, bias)


def linear_gelu(x, weight, bias=None, approximate="none"):
    """y = gelu(linear(x, weight, bias), approximate), computed as one op (``LinearGELUFunction``)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"linear_gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    if bias is None:
        return LinearGELUFunction.apply(x, weight, approximate=approximate)
    return LinearGELUFunction.apply(x, weight, bias, approximate=approximate)


def linear_gelu_infer(x, weight, bias=None, approximate="none"):
    """``linear_gelu`` on arrays, outside autograd: the same kernel, so the same numbers bit for bit."""
    a = x.reshape(-1, x.shape[-1]) @ weight.T  # (N, out)
    bias = np.zeros(weight.shape[0], dtype=a.dtype) if bias is None else bias
    return kernels.bias_gelu_forward(a, bias, approximate).reshape(*x.shape[:-1], weight.shape[0])  # (..., out)


class Linear(Module):
    """y = x W^T + b, initialised like PyTorch: W, b ~ U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        in_features = check_value("Linear: in_features", in_features, int, "[1, inf)")
        out_features = check_value("Linear: out_features", out_features, int, "[1, inf)")
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        rng = get_rng()
        self.weight = Parameter(initial_weights(rng.uniform, -bound, bound, size=(out_features, in_features),
                                                dtype=dtype))
        self.bias = (Parameter(initial_weights(rng.uniform, -bound, bound, size=out_features, dtype=dtype))
                     if bias else None)

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def infer(self, x):
        """``forward`` on an array, outside autograd (generation's inference path): x (..., in) -> (..., out)."""
        y = (x.reshape(-1, x.shape[-1]) @ self.weight.data.T).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.data

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
