"""The functional namespace (``import tinytransformer.nn.functional as F``).

Every function here is defined beside its layer in that layer's file; this
module only gathers them under the names PyTorch users expect.
"""

from ..autograd import gelu, log_softmax, relu, sigmoid, softmax, tanh
from .linear import linear, linear_gelu
from .dropout import dropout
from .embedding import embedding
from .losses import binary_cross_entropy_with_logits, cross_entropy, cross_entropy_composed, mse_loss
from .normalization import layer_norm, layer_norm_composed, rms_norm
from .attention import (
    attention_weights,
    causal_mask,
    masked_softmax,
    scaled_dot_product_attention,
    scaled_dot_product_attention_composed,
)
from .positional import apply_rotary, sinusoidal_positions

__all__ = ["gelu", "linear", "linear_gelu", "log_softmax", "relu", "sigmoid", "softmax", "tanh"]
__all__ += [
    "binary_cross_entropy_with_logits", "cross_entropy", "cross_entropy_composed", "dropout", "embedding",
    "layer_norm", "layer_norm_composed", "mse_loss", "rms_norm",
]
__all__ += [
    "apply_rotary", "attention_weights", "causal_mask", "masked_softmax", "scaled_dot_product_attention",
    "scaled_dot_product_attention_composed", "sinusoidal_positions",
]
