"""The functional namespace (``import tinytransformer.nn.functional as F``).

Every function here is defined beside its layer in that layer's file; this
module only gathers them under the names PyTorch users expect.
"""

from ..autograd import gelu, log_softmax, relu, sigmoid, softmax, tanh
from .linear import linear

__all__ = ["gelu", "linear", "log_softmax", "relu", "sigmoid", "softmax", "tanh"]
