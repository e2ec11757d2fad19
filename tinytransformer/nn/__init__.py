"""Layers and models' building blocks (``tinytransformer.nn``), PyTorch-named.

Each file holds one concept, its functional form beside its Module form;
``tinytransformer.nn.functional`` gathers the functional forms.
"""

from types import SimpleNamespace

from ..optim.clip import clip_grad_norm_
from . import functional
from .linear import Linear
from .activations import GELU, ReLU, Sigmoid, Tanh
from .dropout import Dropout
from .embedding import Embedding
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .normalization import LayerNorm, RMSNorm
from .additive_attention import AdditiveAttention
from .self_attention import CausalSelfAttention, KVCache
from .blocks import MLP, TransformerBlock
from .multihead import MultiheadAttention
from .positional import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding
from .recurrent import LSTM, RNN, LSTMCell, RNNCell
from .crf import CRF
from .lora import LoRALinear, add_lora, merge_lora, merged_state_dict
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential, skip_init
utils = SimpleNamespace(clip_grad_norm_=clip_grad_norm_)  # PyTorch's address for it: tt.nn.utils.clip_grad_norm_

__all__ = ["functional", "Linear", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential", "skip_init"]
__all__ += [
    "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "Embedding", "GELU", "LayerNorm", "MSELoss", "RMSNorm",
    "ReLU", "Sigmoid", "Tanh",
]
__all__ += [
    "AdditiveAttention", "CausalSelfAttention", "KVCache", "LearnedPositionalEmbedding", "MLP", "MultiheadAttention",
    "RotaryEmbedding", "SinusoidalPositionalEncoding", "TransformerBlock",
]
__all__ += ["CRF", "LSTM", "LSTMCell", "RNN", "RNNCell"]
__all__ += ["LoRALinear", "add_lora", "merge_lora", "merged_state_dict"]
