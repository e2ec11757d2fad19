"""Arithmetic and matrix multiplication, with NumPy broadcasting.

For a broadcast binary op the local derivative is taken elementwise on the
broadcast shape, then ``unbroadcast`` sums it back to each input's own shape.
"""

import numpy as np

from .function import Function, lift, unbroadcast
from .tensor import Tensor


def _broadcast_error(name, a, b):
    return ValueError(f"{name}: shapes {np.shape(a)} and {np.shape(b)} cannot be broadcast together")


class _Binary(Function):
    """Shared forward for elementwise binary ops: compute, and name the shapes on failure."""

    saves_operands = True  # Add and Sub need only the shapes (and keep no array an in-place edit could spoil)

    @classmethod
    def compute(cls, a, b):
        raise NotImplementedError

    @classmethod
    def forward(cls, ctx, a, b):
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        if cls.saves_operands:
            ctx.a, ctx.b = a, b
        try:
            return cls.compute(a, b)
        except ValueError:
            raise _broadcast_error(cls.__name__.lower(), a, b) from None


class Add(_Binary):
    """z = a + b;  dz/da = 1, dz/db = 1."""

    saves_operands = False

    @classmethod
    def compute(cls, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.a_shape), unbroadcast(grad, ctx.b_shape)


class Sub(_Binary):
    """z = a - b;  dz/da = 1, dz/db = -1."""

    saves_operands = False

    @classmethod
    def compute(cls, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.a_shape), unbroadcast(-grad, ctx.b_shape)


class Mul(_Binary):
    """z = a * b;  dz/da = b, dz/db = a."""

    @classmethod
    def compute(cls, a, b):
        return a * b

    @staticmethod
    def backward(ctx, grad):
        need_a, need_b = ctx.needs_input_grad
        ga = unbroadcast(grad * ctx.b, ctx.a.shape) if need_a else None
        gb = unbroadcast(grad * ctx.a, ctx.b.shape) if need_b else None
        return ga, gb


class Div(_Binary):
    """z = a / b;  dz/da = 1/b, dz/db = -a/b^2."""

    @classmethod
    def compute(cls, a, b):
        return a / b

    @staticmethod
    def backward(ctx, grad):
        need_a, need_b = ctx.needs_input_grad
        ga = unbroadcast(grad / ctx.b, ctx.a.shape) if need_a else None
        gb = unbroadcast(-grad * ctx.a / (ctx.b * ctx.b), ctx.b.shape) if need_b else None
        return ga, gb


class Pow(_Binary):
    """z = a ** b;  dz/da = b a^(b-1), dz/db = a^b ln a (defined for a > 0)."""

    @classmethod
    def forward(cls, ctx, a, b):
        z = super().forward(ctx, a, b)
        ctx.z = z
        return z

    @classmethod
    def compute(cls, a, b):
        return a**b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.a, ctx.b
        need_a, need_b = ctx.needs_input_grad
        ga = unbroadcast(grad * b * a ** (b - 1), a.shape) if need_a else None
        gb = unbroadcast(grad * ctx.z * np.log(a), b.shape) if need_b else None
        return ga, gb


class Neg(Function):
    """z = -a;  dz/da = -1."""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad


class MatMul(Function):
    """Z = A @ B (NumPy matmul rules: batched, broadcast, 1-D operands promoted).

    dL/dA = dL/dZ @ B^T      dL/dB = A^T @ dL/dZ
    """

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least one axis, got shapes {a.shape} and {b.shape}")
        k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
        if k_a != k_b:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align ({k_a} != {k_b})")
        ctx.a, ctx.b = a, b
        try:
            return a @ b
        except ValueError:
            raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} cannot be broadcast") from None

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.a, ctx.b
        need_a, need_b = ctx.needs_input_grad
        a2 = a[None, :] if a.ndim == 1 else a  # (1, k) for a vector
        b2 = b[:, None] if b.ndim == 1 else b  # (k, 1) for a vector
        g = grad
        if b.ndim == 1:  # put back the axes that 1-D operands lost (b's first)
            g = np.expand_dims(g, -1)
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        ga = gb = None
        if need_a:
            ga = unbroadcast(g @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if need_b:
            if b2.ndim == 2 and a2.ndim > 2:  # a shared weight: one big matmul over all rows
                gb = a2.reshape(-1, a2.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            else:
                gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g, b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb


def add(a, b):
    a, b = _lift_pair(a, b)
    return Add.apply(a, b)


def sub(a, b):
    a, b = _lift_pair(a, b)
    return Sub.apply(a, b)


def mul(a, b):
    a, b = _lift_pair(a, b)
    return Mul.apply(a, b)


def div(a, b):
    a, b = _lift_pair(a, b)
    return Div.apply(a, b)


def pow(a, b):
    a, b = _lift_pair(a, b)
    return Pow.apply(a, b)


def neg(a):
    return Neg.apply(a)


def matmul(a, b):
    a, b = _lift_pair(a, b)
    return MatMul.apply(a, b)


def _lift_pair(a, b):
    """Make both operands tensors; a scalar or mask takes the float operand's dtype."""
    if not isinstance(a, Tensor):
        a = lift(a, b)
    b = lift(b, a)
    return lift(a, b), b
