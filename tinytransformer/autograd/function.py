"""``Function``: one differentiable op, its forward beside its backward.

A subclass writes two static methods on plain NumPy arrays::

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):            # y = e^x
            y = np.exp(x)
            ctx.y = y                   # save what backward needs
            return y

        @staticmethod
        def backward(ctx, grad):        # dL/dx = dL/dy * e^x
            return grad * ctx.y

``Exp.apply(t)`` unwraps tensors to arrays, runs ``forward``, wraps the result
in a Tensor and, when gradients are wanted, links it to its parents through
the context. ``backward`` returns one gradient per positional argument of
``forward`` (``None`` for arguments that are not tensors needing one), each
with the shape of that argument. It must never modify ``grad`` in place: the
same array may be handed to several parents.
"""

import numpy as np

from .tensor import Tensor, is_recording


class Context:
    """What a node of the graph keeps: its Function, its parents, saved arrays."""

    def __init__(self):
        self.fn = None
        self.parents = ()
        self.needs_input_grad = ()
        self.freed = False

    def release(self):
        """Drop saved buffers once backward has used them (keeps the graph's shape)."""
        keep = {"fn": self.fn, "parents": self.parents, "needs_input_grad": self.needs_input_grad}
        self.__dict__.clear()
        self.__dict__.update(keep, freed=True)


class Function:
    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs) -> Tensor:
        ctx = Context()
        record = is_recording(args)
        if record:
            ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        out = Tensor(cls.forward(ctx, *arrays, **kwargs))
        if record:
            ctx.fn = cls
            ctx.parents = tuple(a if needs else None for a, needs in zip(args, ctx.needs_input_grad))
            out.requires_grad = True
            out._ctx = ctx
        return out


def unbroadcast(grad: np.ndarray, shape) -> np.ndarray:
    """Sum ``grad`` back down to ``shape``, undoing NumPy broadcasting.

    Broadcasting copies an input along new leading axes and along its size-1
    axes; each copy received gradient, so the input's gradient is their sum.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def lift(value, like: Tensor) -> Tensor:
    """Make ``value`` a tensor for a binary op with ``like``, without upcasting float32.

    A Python scalar or a boolean/integer array or tensor takes ``like``'s float
    dtype, so ``x * 0.5`` and ``x * mask`` stay float32 when ``x`` is float32.
    """
    if isinstance(value, Tensor):
        if like.dtype.kind == "f" and value.dtype.kind in "biu":  # a mask: it cannot need a gradient
            return Tensor(value.data.astype(like.dtype))
        return value
    arr = np.asarray(value)
    if like.dtype.kind == "f" and (arr.dtype.kind in "biuf" and (arr.ndim == 0 or arr.dtype.kind != "f")):
        arr = arr.astype(like.dtype)
    elif arr.dtype.kind == "f" and arr.ndim == 0:
        arr = arr.astype(np.float32)
    return Tensor(arr)
