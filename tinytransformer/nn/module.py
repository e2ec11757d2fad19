"""``Module`` and ``Parameter``: how layers hold their weights and find each other.

A Module registers every Parameter and sub-Module assigned to it as an
attribute, so ``named_parameters()`` can walk the tree and name each weight
by its path (``transformer.h.0.attn.c_attn.weight``). Those names and the
array layouts are PyTorch's, so state dicts move between the two libraries:

    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})

Inside ``with skip_init():`` layers are built without drawing their initial
weights (``initial_weights``), for a model whose weights are about to be loaded.
"""

from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from ..autograd import Tensor, as_array

_skipping_init = False  # True inside ``skip_init()``


@contextmanager
def skip_init():
    """Build layers with uninitialised weights (``np.empty``) instead of random ones, for loading into.

        with skip_init():
            model = GPT(config)           # every weight is garbage until
        model.load_state_dict(state)      # ... this fills it

    Drawing 124M random numbers, twice (a Linear's own init, then GPT-2's), is most of the
    time of building GPT-2 small: 9 of the 10 s its load took, for weights the file then
    replaces (``models/hf_gpt2.py`` loads under this). The random stream is left untouched.
    LayerNorm's ones and zeros are still written: they cost nothing.
    """
    global _skipping_init
    before, _skipping_init = _skipping_init, True
    try:
        yield
    finally:
        _skipping_init = before


def skipping_init() -> bool:
    """True inside ``skip_init()``: a model's own initialisation (``GPT._init_weights``) should not run."""
    return _skipping_init


def initial_weights(draw, *args, size, dtype):
    """A layer's initial weights, ``draw(*args, size=size)`` as ``dtype`` (``draw`` a method of the
    library's generator, e.g. ``get_rng().uniform``); inside ``skip_init()``, ``np.empty(size, dtype)``."""
    if _skipping_init:
        return np.empty(size, dtype=dtype)
    return draw(*args, size=size).astype(dtype)


class Parameter(Tensor):
    """A tensor that is a weight of a Module: it requires grad by default."""

    def __init__(self, data, requires_grad=True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self):
        return "Parameter " + super().__repr__()


class Module:
    """Base class of every layer and model.

    Subclasses set parameters and sub-modules as attributes in ``__init__`` and
    write ``forward``; calling the module calls ``forward``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            value = value if value is None or isinstance(value, Tensor) else Tensor(value)
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name, value, persistent=True):
        """A tensor that belongs to the module's state but is not trained (e.g. a position table)."""
        if "_buffer_names" not in self.__dict__:
            object.__setattr__(self, "_buffer_names", set())
        self._buffer_names.add(name)
        if not persistent:
            self._non_persistent.add(name)
        setattr(self, name, value)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    # ---------------------------------------------------------------- walking
    def named_children(self):
        yield from self._modules.items()

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix=""):
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            for child_name, child in reversed(list(module._modules.items())):
                if child is not None:
                    stack.append((f"{name}.{child_name}" if name else child_name, child))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix="", recurse=True):
        """(name, Parameter) pairs; a parameter shared by two modules is listed once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{module_name}.{name}" if module_name else name), b

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # ------------------------------------------------------------------ modes
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = np.zeros_like(p.data)

    def apply(self, fn):
        """Call ``fn`` on every sub-module (children first) and on self."""
        for m in reversed(list(self.modules())):
            fn(m)
        return self

    def to(self, dtype):
        """Cast every floating parameter and buffer to ``dtype`` (in place; returns self)."""
        dtype = np.dtype(dtype)
        for m in self.modules():
            for table in (m._parameters, m._buffers):
                for t in table.values():
                    if t is not None and t.dtype.kind == "f":
                        t.data = t.data.astype(dtype, copy=False)
                        if t.grad is not None:
                            t.grad = t.grad.astype(dtype, copy=False)
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    # ------------------------------------------------------------- state dict
    def state_dict(self):
        """Name -> ndarray for every parameter and persistent buffer, in PyTorch's naming.

        Tied weights appear under each of their names, as in PyTorch.
        """
        out = OrderedDict()
        for module_name, module in self.named_modules_with_duplicates():
            for name, p in module._parameters.items():
                if p is not None:
                    out[f"{module_name}.{name}" if module_name else name] = p.data
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    out[f"{module_name}.{name}" if module_name else name] = b.data
        return out

    def named_modules_with_duplicates(self, prefix=""):
        """Every (path, module), listing a shared module under each of its paths."""
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            for child_name, child in reversed(list(module._modules.items())):
                if child is not None:
                    stack.append((f"{name}.{child_name}" if name else child_name, child))

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters and buffers, keeping each one's dtype.

        Values may be ndarrays, tensors, or anything ``np.asarray`` takes. With
        ``strict=True`` missing and unexpected keys are errors; a shape that
        differs is always an error naming the key and both shapes.
        """
        own = self.state_dict()
        targets = {}
        for module_name, module in self.named_modules_with_duplicates():
            for table in (module._parameters, module._buffers):
                for name, t in table.items():
                    key = f"{module_name}.{name}" if module_name else name
                    if key in own:
                        targets[key] = t
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected} for {type(self).__name__}"
            )
        arrays = {}
        for key, value in state_dict.items():  # check every shape before copying anything
            if key not in targets:
                continue
            array = as_array(value)
            if array.shape != targets[key].shape:
                raise ValueError(
                    f"load_state_dict: {key} has shape {array.shape} in the state dict but "
                    f"{targets[key].shape} in the model"
                )
            arrays[key] = array
        for key, array in arrays.items():
            targets[key].data[...] = array  # in place: tied weights stay tied, dtype stays the model's
        return missing, unexpected

    # ------------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after another: ``Sequential(a, b)(x) == b(a(x))``."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleList(Module):
    """A list of modules, registered under the names "0", "1", ..."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules, registered under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        for name, m in (modules or {}).items():
            setattr(self, name, m)

    def __getitem__(self, name):
        return self._modules[name]

    def __setitem__(self, name, module):
        setattr(self, name, module)

    def __contains__(self, name):
        return name in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()
