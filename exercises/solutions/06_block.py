"""Solutions to lesson 06's exercises (exercises/06_block.py): read them after trying.

    tinytransformer exercises check 06 --solutions
"""

import numpy as np


def normalized(x, eps):
    """xhat = (x - mean) / sqrt(var + eps) over the last axis, and r = 1 / sqrt(var + eps)."""
    mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # (..., 1) divided by C
    r = 1 / np.sqrt(var + eps)
    return (x - mu) * r, r


def layer_norm(x, weight, bias, eps=1e-5):
    xhat, _ = normalized(x, eps)
    return xhat * weight + bias  # (..., C)


def layer_norm_backward(grad, x, weight, eps=1e-5):
    xhat, r = normalized(x, eps)
    g = grad * weight  # dL/dxhat
    grad_x = r * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    rows = tuple(range(x.ndim - 1))  # every axis but the features
    return grad_x, (grad * xhat).sum(axis=rows), grad.sum(axis=rows)


def multi_head_attention(x, w_in, b_in, w_out, b_out, n_head, causal=False):
    B, T, C = x.shape
    hs = C // n_head
    q, k, v = np.split(x @ w_in.T + b_in, 3, axis=-1)  # (B, T, C) each
    q, k, v = (a.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3) for a in (q, k, v))  # (B, nh, T, hs)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hs)  # (B, nh, T, T)
    if causal:
        scores = np.where(np.tri(T, dtype=bool), scores, -np.inf)  # key j > query i: not allowed
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)  # softmax over the keys
    y = (p @ v).transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, nh, T, hs) -> (B, T, C): heads side by side
    return y @ w_out.T + b_out  # (B, T, C)
