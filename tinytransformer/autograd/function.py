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

Saved arrays are guarded against in-place changes (PyTorch's version counter).
``backward`` reads the arrays ``forward`` saved; if a user changes one of them
in place after the forward pass (``x.data[0] = 1``, ``x.data *= 2``), the
gradient would be silently wrong. So when a graph is recorded, the context notes,
for every saved array that is (a view of) an input's or the output's data, the
tensor's ``_version`` (counted by ``Tensor.data``'s setter, which ``x.data += 1``
calls) and a fingerprint of its bits (which catches ``x.data[...] = ...`` too);
``backward`` compares both before using the array and raises a RuntimeError naming
the op. The fingerprint, the XOR of the elements' bits, changes with any edit of
one element and nearly every larger one (a reordering of the same values escapes
it). Measured on a config-A GPT training step (one thread): 3.3 ms of 76 ms with
Numba (4%), 4.0 ms of 111 ms with NumPy, nearly all of it the XOR's two passes over memory.
"""

import numpy as np

from .grad_mode import is_grad_enabled
from .tensor import Tensor


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}  # an element's bits, read as an integer


def fingerprint(array):
    """The XOR of ``array``'s elements read as unsigned integers: one pass, no copy (None for objects)."""
    if array.dtype.kind not in "biufcmM":
        return None
    words = array.view(_UINT[array.itemsize]) if array.itemsize in _UINT else np.ascontiguousarray(array).view(np.uint8)
    return int(np.bitwise_xor.reduce(words, axis=None))


def _owner(array):
    """The array that owns ``array``'s memory (NumPy points every view's ``base`` at it)."""
    base = getattr(array, "base", None)
    return array if base is None else base


class Context:
    """What a node of the graph keeps: its Function, its parents, saved arrays."""

    def __init__(self):
        self.fn = None
        self.parents = ()
        self.needs_input_grad = ()
        self.freed = False
        self.versions = ()  # what save_versions notes: (saved array, fingerprint, tensor or None, version)

    def save_versions(self, inputs, output):
        """Note the version and fingerprint of each saved array that is an input's or the output's data."""
        tensors = {}
        for t in [output] + [t for t in inputs if isinstance(t, Tensor)]:  # an input wins over the output
            tensors[id(_owner(t.data))] = t
        self.versions = []  # the tensor is None for the output: it holds this context, which must not hold it
        for value in list(self.__dict__.values()):
            for array in value if isinstance(value, (tuple, list)) else (value,):
                t = tensors.get(id(_owner(array))) if isinstance(array, np.ndarray) else None
                if t is not None:
                    self.versions.append((array, fingerprint(array), None if t is output else t, t._version))

    def check_versions(self, output):
        """Raise if an array noted by ``save_versions`` has changed in place since the forward pass."""
        for array, saved_print, tensor, version in self.versions:
            tensor = output if tensor is None else tensor
            if tensor._version != version or fingerprint(array) != saved_print:
                how = (f"its version is {tensor._version}, the graph saved version {version}"
                       if tensor._version != version else "its values differ from the forward pass's")
                raise RuntimeError(
                    f"backward: a {array.dtype} array of shape {array.shape} that {self.fn.__name__} saved for its "
                    f"backward pass was changed in place after the forward pass ({how}), so the gradient would be "
                    "wrong; run the forward pass again after the change, or change a copy"
                )

    def release(self):
        """Drop saved buffers once backward has used them (keeps the graph's shape)."""
        keep = {"fn": self.fn, "parents": self.parents, "needs_input_grad": self.needs_input_grad}
        self.__dict__.clear()
        self.__dict__.update(keep, freed=True)


def is_recording(tensors) -> bool:
    """True when an op on ``tensors`` must be recorded for backward."""
    return is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


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
            ctx.save_versions(args, out)
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
