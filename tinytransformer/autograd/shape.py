"""Ops that move values around without changing them.

Their backward passes move gradients back the same way: a reshape's gradient
is reshaped back, a permutation's is permuted by the inverse permutation, an
indexed read becomes an indexed *add* (scatter-add), because an element read
twice receives gradient from both reads.
"""

import numpy as np

from .function import Function, lift, unbroadcast
from .tensor import Tensor, as_array


class Reshape(Function):
    """y = x viewed with a new shape;  dL/dx = dL/dy reshaped back."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape}") from None

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape), None


class Permute(Function):
    """y = x with its axes reordered;  dL/dx = dL/dy with the inverse order."""

    @staticmethod
    def forward(ctx, x, axes):
        if sorted(a + x.ndim if a < 0 else a for a in axes) != list(range(x.ndim)):
            raise ValueError(f"permute: {axes} is not a permutation of the {x.ndim} axes of shape {x.shape}")
        ctx.inverse = np.argsort([a % x.ndim for a in axes])
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, grad):
        return np.transpose(grad, ctx.inverse), None


class GetItem(Function):
    """y = x[index];  dL/dx = zeros with dL/dy added at the indexed places.

    With integer-array (gather) indexing the same element can be read several
    times, so its gradient is a sum: ``np.add.at`` adds without dropping repeats.
    """

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        try:
            return x[index]
        except IndexError as err:
            raise IndexError(f"getitem: index {_describe(index)} is invalid for shape {x.shape}: {err}") from None

    @staticmethod
    def backward(ctx, grad):
        out = np.zeros(ctx.shape, dtype=grad.dtype)
        index = ctx.index
        if _has_array(index):
            np.add.at(out, index, grad)
        else:  # basic slicing never repeats an element, so assignment is enough
            out[index] = grad
        return out, None


class Concatenate(Function):
    """y = [x_1, x_2, ...] joined along an axis;  each dL/dx_k is its slice of dL/dy."""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        if not xs:
            raise ValueError("concatenate: needs at least one tensor")
        try:
            y = np.concatenate(xs, axis=axis)
        except (ValueError, IndexError):  # NumPy's AxisError is both
            shapes = ", ".join(str(x.shape) for x in xs)
            raise ValueError(f"concatenate: shapes {shapes} do not match outside axis {axis}") from None
        ctx.axis = axis % y.ndim
        ctx.bounds = np.cumsum([x.shape[ctx.axis] for x in xs])[:-1]
        return y

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.split(grad, ctx.bounds, axis=ctx.axis))


class Stack(Function):
    """y = [x_1, x_2, ...] stacked along a new axis;  dL/dx_k = dL/dy[k] along that axis."""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        if not xs:
            raise ValueError("stack: needs at least one tensor")
        if len({x.shape for x in xs}) != 1:
            shapes = ", ".join(str(x.shape) for x in xs)
            raise ValueError(f"stack: all tensors need the same shape, got {shapes}")
        try:
            y = np.stack(xs, axis=axis)
        except (ValueError, IndexError):  # NumPy's AxisError is both
            raise ValueError(f"stack: axis {axis} is out of range for the result's {xs[0].ndim + 1} dimensions") from None
        ctx.axis = axis % y.ndim
        return y

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.moveaxis(grad, ctx.axis, 0))


class Where(Function):
    """y = a where cond else b;  dL/da = dL/dy where cond, dL/db = dL/dy elsewhere."""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond, ctx.a_shape, ctx.b_shape = cond, a.shape, b.shape
        try:
            return np.where(cond, a, b)
        except ValueError:
            raise ValueError(
                f"where: shapes {np.shape(cond)} (condition), {a.shape} and {b.shape} cannot be broadcast together"
            ) from None

    @staticmethod
    def backward(ctx, grad):
        zero = np.zeros((), dtype=grad.dtype)
        ga = unbroadcast(np.where(ctx.cond, grad, zero), ctx.a_shape)
        gb = unbroadcast(np.where(ctx.cond, zero, grad), ctx.b_shape)
        return None, ga, gb


class MaskedFill(Function):
    """y = value where mask else x;  dL/dx = dL/dy where the mask is False, 0 elsewhere."""

    @staticmethod
    def forward(ctx, x, mask, value):
        if mask.dtype != np.bool_:
            raise TypeError(f"masked_fill: mask must be boolean, got dtype {mask.dtype}")
        try:
            fits = np.broadcast_shapes(mask.shape, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to the tensor's shape {x.shape}")
        ctx.mask = mask
        return np.where(mask, np.asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, grad):
        return np.where(ctx.mask, np.zeros((), dtype=grad.dtype), grad), None, None


def _has_array(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (np.ndarray, list)) for p in parts)


def _describe(index) -> str:
    parts = index if isinstance(index, tuple) else (index,)
    return "(" + ", ".join(f"array{p.shape}" if isinstance(p, np.ndarray) else repr(p) for p in parts) + ")"


def _unwrap_index(index):
    """Tensors used as indices become their arrays (integer or boolean)."""
    if isinstance(index, tuple):
        return tuple(_unwrap_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def reshape(x, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(x, shape)


def unsqueeze(x, axis):
    """Insert a size-1 axis at ``axis`` (a reshape)."""
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def squeeze(x, axis=None):
    """Drop size-1 axes (all of them, or the one at ``axis``) (a reshape)."""
    if axis is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    axis = axis % x.ndim
    if x.shape[axis] != 1:
        raise ValueError(f"squeeze: axis {axis} has size {x.shape[axis]}, not 1 (shape {x.shape})")
    return reshape(x, x.shape[:axis] + x.shape[axis + 1 :])


def permute(x, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Permute.apply(x, tuple(axes))


def swapaxes(x, axis0, axis1):
    if not (-x.ndim <= axis0 < x.ndim and -x.ndim <= axis1 < x.ndim):
        raise ValueError(f"transpose: axes {axis0} and {axis1} are not both in range for shape {x.shape}")
    axes = list(range(x.ndim))
    axes[axis0], axes[axis1] = axes[axis1], axes[axis0]
    return Permute.apply(x, tuple(axes))


transpose = swapaxes


def getitem(x, index):
    return GetItem.apply(x, _unwrap_index(index))


def concatenate(tensors, axis=0):
    return Concatenate.apply(*tensors, axis=axis)


cat = concatenate


def stack(tensors, axis=0):
    return Stack.apply(*tensors, axis=axis)


def split(x, split_size_or_sections, axis=0):
    """Split ``x`` along ``axis`` into pieces of one size (an int) or of the given sizes (a list)."""
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, n - start) for start in range(0, n, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, but axis {axis} has length {n}")
    pieces, start = [], 0
    for size in sizes:
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, start + size)
        pieces.append(GetItem.apply(x, tuple(index)))
        start += size
    return pieces


def where(cond, a, b):
    cond = as_array(cond)
    if isinstance(a, Tensor):
        b = lift(b, a)
    elif isinstance(b, Tensor):
        a = lift(a, b)
    else:
        a, b = Tensor(a), Tensor(b)
    return Where.apply(cond.astype(bool, copy=False), a, b)


def masked_fill(x, mask, value):
    mask = as_array(mask)
    return MaskedFill.apply(x, mask, value)
