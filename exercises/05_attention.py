"""Exercises for lesson 05, attention: the two masks, and scaled dot-product attention with them.

Replace each `raise NotImplementedError` with your code, then check it from the project root:

    tinytransformer exercises check 05

The solutions are in exercises/solutions/05_attention.py: try first.
"""

import numpy as np  # noqa: F401 - for your code


def causal_mask(n_queries, n_keys):
    """The causal mask, a boolean (n_queries, n_keys) array: True where query i may attend to key j, i.e. j <= i.

    (The convention of scaled_dot_product_attention's ``attn_mask``: True = may attend.)
    """
    raise NotImplementedError


def padding_mask(lengths):
    """The key padding mask of a batch of sequences right-padded to the longest.

    lengths: (B,) integers, each sequence's real length (0 is allowed: all padding).
    Returns a boolean (B, T) array, T = max(lengths): True at padding, i.e. at positions t >= lengths[b]
    (PyTorch's ``key_padding_mask`` convention: True = ignore this key).
    """
    raise NotImplementedError


def attention(q, k, v, attn_mask=None, key_padding_mask=None):
    """Single-head scaled dot-product attention with optional masks.

    q: (B, L, E) queries; k: (B, S, E) keys; v: (B, S, Ev) values;
    attn_mask: None or a boolean (L, S), True = query i may attend to key j (e.g. causal_mask(L, S));
    key_padding_mask: None or a boolean (B, S), True = key j of sequence b is padding, to ignore.
    Returns (B, L, Ev):

        scores = q k^T / sqrt(E)                           (B, L, S)
        scores = -inf where a key may not be attended to   (either mask)
        P = softmax(scores) over the keys (the last axis)
        out = P v

    A query with every key masked (a sequence that is all padding) has nothing to attend to: its output
    row must be zeros, not the NaN that a softmax of only -inf gives.
    """
    raise NotImplementedError
