"""Dropout (Srivastava et al. 2014), in its "inverted" form.

While training, each element is kept with probability 1 - p and zeroed
otherwise, and the survivors are scaled by 1 / (1 - p):

    y = x * m / (1 - p),    m_i ~ Bernoulli(1 - p),    so E[y] = x

Because the scaling happens at training time, evaluation needs nothing: in
eval mode (``training=False``) dropout is the identity. The backward pass
applies the same mask and scale, dL/dx = dL/dy * m / (1 - p). Masks are drawn
from the library's generator (``tt.manual_seed`` makes them repeatable).

``p = 1`` is allowed and, as in PyTorch, zeroes everything (no division by 0).
"""

import numpy as np

from ..autograd import Function
from ..rng import get_rng
from ..validation import check_value
from .module import Module


class DropoutFunction(Function):
    """y = x * m / (1 - p) with a fresh Bernoulli(1 - p) mask m;  dL/dx = dL/dy * m / (1 - p)."""

    @staticmethod
    def forward(ctx, x, p):
        keep = get_rng().random(x.shape, dtype=np.float32) >= p  # bool mask, True with probability 1 - p
        ctx.keep, ctx.scale = keep, (1.0 / (1.0 - p) if p < 1 else 0.0)
        y = x * keep  # a bool mask keeps x's dtype
        y *= ctx.scale
        return y

    @staticmethod
    def backward(ctx, grad):
        g = grad * ctx.keep
        g *= ctx.scale
        return g, None


def _check_p(p, where):
    return check_value(f"{where}: dropout probability p", p, float, "[0, 1]")


def dropout(input, p=0.5, training=True):
    """Inverted dropout (``torch.nn.functional.dropout``); returns ``input`` itself when not training or p == 0."""
    p = _check_p(p, "dropout")
    if not training or p == 0:
        return input
    return DropoutFunction.apply(input, p)


class Dropout(Module):
    """Zero each element with probability ``p`` while training (scaling the rest by 1/(1-p)); identity in eval."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = _check_p(p, "Dropout")

    def forward(self, input):
        return dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
