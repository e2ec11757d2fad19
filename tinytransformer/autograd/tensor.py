"""The Tensor: a NumPy array that remembers how it was made.

Every op on tensors that require gradients records a node in a graph: which
``Function`` made the result, from which parents, and what it saved for its
backward pass. ``loss.backward()`` then walks that graph from the loss back to
the leaves in reverse topological order, applying the chain rule once per node:

    dL/d(input) = backward(dL/d(output))      for each node, children first

The ops themselves live beside this file, grouped by family (arithmetic,
elementwise, reductions, shape, softmax); each one is a ``Function`` subclass
whose ``forward`` and ``backward`` sit side by side. Lesson 01 walks through it.
"""

import numpy as np

DEFAULT_DTYPE = np.float32


def _to_array(data, dtype=None, copy=False) -> np.ndarray:
    """Turn ``data`` into an ndarray: Python floats become float32, arrays keep their dtype."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        arr = np.asarray(data, dtype=dtype)
        return arr.copy() if copy and arr is data else arr
    if isinstance(data, np.ndarray):
        return data.copy() if copy else data
    if isinstance(data, np.generic):  # a NumPy scalar (what reductions to 0-d return) keeps its dtype
        return np.asarray(data)
    arr = np.asarray(data)
    if arr.dtype.kind == "f":  # a Python float or list of floats: the default dtype
        arr = arr.astype(DEFAULT_DTYPE)
    return arr


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    ``Tensor(data, requires_grad=False, dtype=None)`` wraps ``data`` (shared,
    not copied, when it already is an ndarray). Python floats give float32;
    NumPy arrays keep their dtype, so float64 is there when asked for.
    """

    __slots__ = ("_data", "_version", "grad", "requires_grad", "_ctx", "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # make `ndarray + Tensor` call Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None):
        self._data = _to_array(data, dtype)
        self._version = 0  # in-place changes through .data (PyTorch's _version); see Context.save_versions
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating-point tensors can require gradients, got dtype {self.data.dtype}")
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None  # the Context of the Function that made this tensor (None for leaves)
        self._retains_grad = False

    # ------------------------------------------------------------------ basics
    @property
    def data(self) -> np.ndarray:
        """The array inside (shared, not copied); ``x.data += 1`` changes it in place and counts one version."""
        return self._data

    @data.setter
    def data(self, value):
        if value is self._data:  # `x.data += 1` and the like: the same array, changed in place
            self._version += 1
        self._data = value

    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    @property
    def is_leaf(self):
        return self._ctx is None

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __bool__(self):  # as in PyTorch: `if t > 0:` means one thing only for a single element
        if self.data.size != 1:
            values = "more than one value" if self.data.size else "no values"
            raise RuntimeError(f"Boolean value of Tensor with {values} is ambiguous")
        return bool(self.data)

    def __repr__(self):
        body = np.array2string(self.data, precision=4, separator=", ", prefix="tensor(")
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}, dtype={self.dtype}{grad})"

    __hash__ = object.__hash__

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """A tensor sharing this one's data, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self):
        """Forget the accumulated gradient (same as ``t.grad = None``)."""
        self.grad = None

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        self._retains_grad = True
        return self

    def requires_grad_(self, flag=True):
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad_: dtype {self.dtype} cannot require gradients")
        self.requires_grad = bool(flag)
        return self

    # ---------------------------------------------------------------- backward
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is dL/d(self); it may be omitted only when ``self`` holds one
        element (a loss). The graph's saved buffers are released afterwards
        unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no graph "
                "(did you create it inside no_grad, or from tensors without requires_grad=True?)"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be omitted only for a one-element output, but this tensor "
                    f"has shape {self.shape}; pass grad= an array of that shape"
                )
            grad = np.ones_like(self.data)
        else:
            grad = _to_array(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape} but the tensor has shape {self.shape}")

        # dL/d(node) for the nodes not yet visited, summed over every path that reaches them. A node's
        # entry is popped when the node is visited, so each gradient is freed as soon as it is used.
        grads = {id(self): grad}
        for node in reversed(topological_order(self)):
            g = grads.pop(id(node), None)
            if g is None:  # no path from self reaches this node with a gradient
                continue
            if node.is_leaf or node._retains_grad:
                if node.grad is None:
                    # A copy: g may be shared (Add hands one array to both parents) or a view of another
                    # gradient, and .grad must be an array of its own (clip_grad_norm_ scales it in place).
                    # Measured: no cost in time or peak memory (a config-A GPT's forward + backward).
                    node.grad = np.array(g, dtype=node.dtype)
                else:
                    node.grad = node.grad + g.astype(node.dtype, copy=False)
            ctx = node._ctx
            if ctx is None:
                continue
            if ctx.freed:
                raise RuntimeError(
                    f"backward: the graph through {ctx.fn.__name__} was already freed by an earlier "
                    "backward; call backward(retain_graph=True) the first time to go through it twice"
                )
            ctx.check_versions(node)  # an array it saved, changed in place since, would give a wrong gradient
            parent_grads = ctx.fn.backward(ctx, g)  # the chain rule: dL/d(parent) from dL/d(node)
            if not isinstance(parent_grads, tuple):
                parent_grads = (parent_grads,)
            for parent, pg in zip(ctx.parents, parent_grads):
                if parent is not None and pg is not None:
                    key = id(parent)
                    grads[key] = grads[key] + pg if key in grads else pg  # never in place: pg may be shared
            if not retain_graph:
                ctx.release()

    # ------------------------------------------------------- operator methods
    # Each one hands over to a Function defined in a sibling module
    # (imported at the bottom of this file, once Tensor exists).
    def __add__(self, other):
        return arithmetic.add(self, other)

    def __radd__(self, other):
        return arithmetic.add(other, self)

    def __sub__(self, other):
        return arithmetic.sub(self, other)

    def __rsub__(self, other):
        return arithmetic.sub(other, self)

    def __mul__(self, other):
        return arithmetic.mul(self, other)

    def __rmul__(self, other):
        return arithmetic.mul(other, self)

    def __truediv__(self, other):
        return arithmetic.div(self, other)

    def __rtruediv__(self, other):
        return arithmetic.div(other, self)

    def __pow__(self, exponent):
        return arithmetic.pow(self, exponent)

    def __rpow__(self, base):
        return arithmetic.pow(base, self)

    def __matmul__(self, other):
        return arithmetic.matmul(self, other)

    def __rmatmul__(self, other):
        return arithmetic.matmul(other, self)

    def __neg__(self):
        return arithmetic.neg(self)

    def __getitem__(self, index):
        return shape.getitem(self, index)

    # Comparisons give boolean tensors outside the graph (they have no gradient).
    def __lt__(self, other):
        return Tensor(self.data < as_array(other))

    def __le__(self, other):
        return Tensor(self.data <= as_array(other))

    def __gt__(self, other):
        return Tensor(self.data > as_array(other))

    def __ge__(self, other):
        return Tensor(self.data >= as_array(other))

    def __eq__(self, other):
        return Tensor(self.data == as_array(other))

    def __ne__(self, other):
        return Tensor(self.data != as_array(other))

    # ------------------------------------------------------------ op methods
    def exp(self):
        return elementwise.exp(self)

    def log(self):
        return elementwise.log(self)

    def sqrt(self):
        return elementwise.sqrt(self)

    def tanh(self):
        return elementwise.tanh(self)

    def sigmoid(self):
        return elementwise.sigmoid(self)

    def relu(self):
        return elementwise.relu(self)

    def gelu(self, approximate="none"):
        return elementwise.gelu(self, approximate=approximate)

    def astype(self, dtype):
        return elementwise.astype(self, dtype)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def sum(self, axis=None, keepdims=False):
        return reductions.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return reductions.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return reductions.max(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, correction=1):
        return reductions.var(self, axis=axis, keepdims=keepdims, correction=correction)

    def argmax(self, axis=None):
        return Tensor(self.data.argmax(axis=axis))

    def reshape(self, *shape_):
        return shape.reshape(self, *shape_)

    view = reshape

    def unsqueeze(self, axis):
        return shape.unsqueeze(self, axis)

    def squeeze(self, axis=None):
        return shape.squeeze(self, axis)

    def permute(self, *axes):
        return shape.permute(self, *axes)

    def transpose(self, axis0, axis1):
        return shape.swapaxes(self, axis0, axis1)

    swapaxes = transpose

    @property
    def T(self):
        return shape.permute(self, *reversed(range(self.ndim)))

    def split(self, split_size_or_sections, axis=0):
        return shape.split(self, split_size_or_sections, axis=axis)

    def masked_fill(self, mask, value):
        return shape.masked_fill(self, mask, value)

    def softmax(self, axis=-1):
        return softmax.softmax(self, axis=axis)

    def log_softmax(self, axis=-1):
        return softmax.log_softmax(self, axis=axis)

    def logsumexp(self, axis=None, keepdims=False):
        return softmax.logsumexp(self, axis=axis, keepdims=keepdims)


def as_array(x) -> np.ndarray:
    """The NumPy array inside a tensor, or ``x`` itself as an array: what code that accepts either reads."""
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def topological_order(root):
    """Nodes reachable from ``root`` that need gradients, parents before children.

    An explicit stack instead of recursion, so a chain of 100,000 ops does not
    hit Python's recursion limit. Each node is pushed twice: once to expand its
    parents, once (``expanded=True``) to be emitted after all of them.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            for parent in node._ctx.parents:
                if parent is not None and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def tensor(data, requires_grad=False, dtype=None) -> Tensor:
    """A new tensor holding a copy of ``data`` (like ``torch.tensor``)."""
    return Tensor(_to_array(data, dtype, copy=True), requires_grad=requires_grad)


def _shape_arg(shape_):
    """Accept both ``f(2, 3)`` and ``f((2, 3))``, as NumPy and PyTorch users expect."""
    return tuple(shape_[0]) if len(shape_) == 1 and isinstance(shape_[0], (tuple, list)) else shape_


def zeros(*shape_, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    return Tensor(np.zeros(_shape_arg(shape_), dtype=dtype), requires_grad=requires_grad)


def ones(*shape_, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    return Tensor(np.ones(_shape_arg(shape_), dtype=dtype), requires_grad=requires_grad)


from . import arithmetic, elementwise, reductions, shape, softmax  # noqa: E402  (they need Tensor)
