"""Additive attention (Bahdanau, Cho & Bengio 2015): the attention that came before dot products.

    score(q, k) = v^T tanh(W_q q + W_k k)        a = softmax over the keys      context = sum_j a_j value_j

An MLP scores each query-key pair, so it builds an (L, S, hidden) tensor where
dot-product attention needs one matrix product; lesson 05 compares the two.
"""

import numpy as np

from ..autograd import as_array
from ..kernels.attention_softmax import broadcasts_to
from .attention import masked_softmax
from .linear import Linear
from .module import Module


class AdditiveAttention(Module):
    """Bahdanau's attention layer: ``forward(query, key, value=None, attn_mask=None) -> (context, weights)``.

    query (..., L, query_dim), key (..., S, key_dim), value (..., S, Dv)
    (defaults to key, as in the paper where the encoder states serve as both).
    ``attn_mask`` has ``scaled_dot_product_attention``'s convention (PyTorch has
    no such layer): boolean True = take part, or float added to the scores;
    it broadcasts to (..., L, S). Returns (context (..., L, Dv), weights (..., L, S)).
    """

    def __init__(self, query_dim, key_dim, hidden_dim, dtype=np.float32):
        super().__init__()
        self.query_dim, self.key_dim, self.hidden_dim = query_dim, key_dim, hidden_dim
        self.W_q = Linear(query_dim, hidden_dim, bias=False, dtype=dtype)
        self.W_k = Linear(key_dim, hidden_dim, bias=False, dtype=dtype)
        self.v = Linear(hidden_dim, 1, bias=False, dtype=dtype)

    def forward(self, query, key, value=None, attn_mask=None):
        value = key if value is None else value
        if query.shape[-1] != self.query_dim or key.shape[-1] != self.key_dim:
            raise ValueError(
                f"AdditiveAttention: expected query (..., {self.query_dim}) and key (..., {self.key_dim}), "
                f"got query {query.shape} and key {key.shape}"
            )
        if key.shape[-2] != value.shape[-2]:
            raise ValueError(f"AdditiveAttention: key {key.shape} and value {value.shape} need the same length S")
        try:
            batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2])
        except ValueError:
            raise ValueError(f"AdditiveAttention: batch axes of query {query.shape} and key {key.shape} differ") from None
        scores_shape = batch + (query.shape[-2], key.shape[-2])  # (..., L, S)
        if attn_mask is not None:
            mask = np.asarray(as_array(attn_mask))
            if mask.dtype.kind not in "bf" or not broadcasts_to(mask.shape, scores_shape):
                raise ValueError(
                    f"AdditiveAttention: attn_mask must be boolean or float and broadcast to (..., L, S) = "
                    f"{scores_shape}, got {mask.dtype} {mask.shape}"
                )
        features = self.W_q(query).unsqueeze(-2) + self.W_k(key).unsqueeze(-3)  # (..., L, S, hidden)
        scores = self.v(features.tanh()).squeeze(-1)  # (..., L, S)
        weights = masked_softmax(scores, attn_mask)  # (..., L, S)
        return weights @ value, weights  # (..., L, Dv), (..., L, S)

    def extra_repr(self):
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, hidden_dim={self.hidden_dim}"
