"""Activation layers: the Module forms of the elementwise functions in ``autograd/elementwise.py``.

Each holds no parameters; the formulas and their derivatives live beside the
Functions they call (GELU: x Phi(x), Hendrycks & Gimpel 2016).
"""

import numpy as np

from .. import kernels
from ..autograd import gelu, relu, sigmoid, tanh
from .module import Module


class GELU(Module):
    """y = x Phi(x); ``approximate='tanh'`` uses GPT-2's tanh approximation."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return gelu(input, approximate=self.approximate)

    def infer(self, x):
        """``forward`` on an array, outside autograd (generation's inference path)."""
        return kernels.gelu_forward(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class ReLU(Module):
    """y = max(x, 0)."""

    def forward(self, input):
        return relu(input)

    def infer(self, x):
        """``forward`` on an array, outside autograd (generation's inference path)."""
        return np.where(x > 0, x, 0).astype(x.dtype, copy=False)


class Tanh(Module):
    """y = tanh(x)."""

    def forward(self, input):
        return tanh(input)


class Sigmoid(Module):
    """y = 1 / (1 + e^-x)."""

    def forward(self, input):
        return sigmoid(input)
