"""The Transformer block: attention then an MLP, each wrapped in a residual connection and a LayerNorm.

Two places for the LayerNorm (Xiong et al. 2020 compare them):

    pre-LN (GPT-2, nanoGPT; ``norm_first=True``):      post-LN (Vaswani et al. 2017):
        x = x + attn(ln_1(x))                              x = ln_1(x + attn(x))
        x = x + mlp(ln_2(x))                               x = ln_2(x + mlp(x))

Pre-LN leaves a clean residual path from input to output, so deep stacks
train without learning-rate warm-up; post-LN normalises the residual stream
itself after every sub-layer. Names follow GPT-2 (``ln_1``, ``attn``, ``ln_2``,
``mlp.c_fc``, ``mlp.c_proj``) so its weights load unchanged.
"""

import numpy as np

from .activations import GELU, ReLU
from .self_attention import CausalSelfAttention
from .dropout import Dropout
from .linear import Linear, linear_gelu, linear_gelu_infer
from .module import Module
from .normalization import LayerNorm

ACTIVATIONS = {"gelu": lambda: GELU(), "gelu_tanh": lambda: GELU(approximate="tanh"), "relu": lambda: ReLU()}


class MLP(Module):
    """The position-wise feed-forward network: y = dropout(c_proj(act(c_fc(x)))).

    c_fc widens each token's vector from n_embd to hidden_dim (4 n_embd by
    default, as in the paper and GPT-2), the activation bends it, c_proj maps
    it back. Every position is transformed alike and independently.
    ``activation``: "gelu" (exact), "gelu_tanh" (GPT-2's approximation) or "relu" (the original paper).

    With a GELU, c_fc and the activation run as one op (``linear_gelu``): the
    same numbers, one graph node and one pass over the hidden activations fewer
    (measured, one thread: config B's training step 0.7% faster, A's unchanged).
    """

    def __init__(self, n_embd, hidden_dim=None, dropout=0.0, bias=True, activation="gelu", dtype=np.float32):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        hidden_dim = 4 * n_embd if hidden_dim is None else hidden_dim
        self.c_fc = Linear(n_embd, hidden_dim, bias=bias, dtype=dtype)
        self.act = ACTIVATIONS[activation]()
        self.c_proj = Linear(hidden_dim, n_embd, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        if self._fused():
            h = linear_gelu(x, self.c_fc.weight, self.c_fc.bias, self.act.approximate)  # (..., hidden)
        else:
            h = self.act(self.c_fc(x))  # (..., n_embd) -> (..., hidden)
        return self.dropout(self.c_proj(h))  # (..., n_embd)

    def infer(self, x):
        """``forward`` on an array, outside autograd and without dropout (generation's inference path)."""
        if self._fused():
            c_fc = self.c_fc
            h = linear_gelu_infer(x, c_fc.weight.data, None if c_fc.bias is None else c_fc.bias.data, self.act.approximate)
        else:
            h = self.act.infer(self.c_fc.infer(x))  # (..., n_embd) -> (..., hidden)
        return self.c_proj.infer(h)  # (..., n_embd)

    def _fused(self):
        """Whether c_fc and the activation can run as one op: a plain Linear (not, say, LoRA's) and a GELU."""
        return isinstance(self.c_fc, Linear) and isinstance(self.act, GELU)


class TransformerBlock(Module):
    """One Transformer layer over x (B, T, n_embd): self-attention and an MLP, each with a residual.

    ``causal=True`` is a decoder (GPT) block: position t attends to positions
    <= t. ``causal=False`` is an encoder block, where every position sees all
    others except those marked by ``key_padding_mask`` (B, T), True = padding.
    ``activation`` is the MLP's (``MLP``), ``layer_norm_eps`` both LayerNorms' eps.
    """

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, norm_first=True, causal=True, activation="gelu",
                 layer_norm_eps=1e-5):
        super().__init__()
        self.norm_first = norm_first
        self.ln_1 = LayerNorm(n_embd, eps=layer_norm_eps, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout=dropout, bias=bias, causal=causal)
        self.ln_2 = LayerNorm(n_embd, eps=layer_norm_eps, bias=bias)
        self.mlp = MLP(n_embd, dropout=dropout, bias=bias, activation=activation)

    def forward(self, x, key_padding_mask=None, cache=None):
        if self.norm_first:
            x = x + self.attn(self.ln_1(x), key_padding_mask, cache)  # (B, T, C)
            return x + self.mlp(self.ln_2(x))  # (B, T, C)
        x = self.ln_1(x + self.attn(x, key_padding_mask, cache))  # (B, T, C)
        return self.ln_2(x + self.mlp(x))  # (B, T, C)

    def infer(self, x, cache=None):
        """``forward`` on an array x (B, T, C), outside autograd and without dropout: generation's inference path.
        Each sub-layer's ``infer`` does its ``forward``'s arithmetic without building a graph."""
        if self.norm_first:
            x = x + self.attn.infer(self.ln_1.infer(x), cache)  # (B, T, C)
            return x + self.mlp.infer(self.ln_2.infer(x))  # (B, T, C)
        x = self.ln_1.infer(x + self.attn.infer(x, cache))  # (B, T, C)
        return self.ln_2.infer(x + self.mlp.infer(x))  # (B, T, C)

    def extra_repr(self):
        return f"norm_first={self.norm_first}"
