"""Solutions to lesson 05's exercises (exercises/05_attention.py): read them after trying.

    tinytransformer exercises check 05 --solutions
"""

import numpy as np


def causal_mask(n_queries, n_keys):
    i = np.arange(n_queries)[:, None]  # (L, 1) the query's position
    j = np.arange(n_keys)[None, :]  # (1, S) the key's position
    return j <= i  # (L, S): no key from the future


def padding_mask(lengths):
    lengths = np.asarray(lengths)
    T = int(lengths.max())
    return np.arange(T)[None, :] >= lengths[:, None]  # (B, T)


def attention(q, k, v, attn_mask=None, key_padding_mask=None):
    B, L, E = q.shape
    S = k.shape[1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(E)  # (B, L, S)
    keep = np.ones((B, L, S), dtype=bool)
    if attn_mask is not None:
        keep &= attn_mask  # (L, S) broadcast over the batch
    if key_padding_mask is not None:
        keep &= ~key_padding_mask[:, None, :]  # (B, 1, S) broadcast over the queries
    scores = np.where(keep, scores, -np.inf)
    alive = keep.any(axis=-1, keepdims=True)  # (B, L, 1): rows with at least one key
    scores = np.where(alive, scores, 0.0)  # a dead row: any finite scores, zeroed below
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)  # (B, L, S) softmax over the keys
    p = np.where(alive, p, 0.0)
    return p @ v  # (B, L, Ev)
