"""Exercises for lesson 06, multi-head attention and the block: LayerNorm both ways, multi-head attention.

Replace each `raise NotImplementedError` with your code, then check it from the project root:

    tinytransformer exercises check 06

The solutions are in exercises/solutions/06_block.py: try first.
"""

import numpy as np  # noqa: F401 - for your code


def layer_norm(x, weight, bias, eps=1e-5):
    """LayerNorm over the last axis (Ba, Kiros & Hinton 2016), as nn.LayerNorm.

    x: (..., C); weight, bias: (C,). Each vector x of C numbers (one per position) on its own:

        mu = mean(x),  var = mean((x - mu)^2)         (divide by C, not C - 1)
        y = (x - mu) / sqrt(var + eps) * weight + bias

    Returns y, (..., C).
    """
    raise NotImplementedError


def layer_norm_backward(grad, x, weight, eps=1e-5):
    """The backward pass of layer_norm, given x (not y). grad: dL/dy, (..., C); x: (..., C); weight: (C,).

    Returns (dL/dx, dL/dweight, dL/dbias), of shapes (..., C), (C,), (C,). With r = 1 / sqrt(var + eps),
    xhat = (x - mu) r and g = dL/dxhat = dL/dy * weight, per vector (lesson 10 derives it):

        dL/dx      = r * (g - mean(g) - xhat * mean(g * xhat))        means over the C features
        dL/dweight = sum over every position of dL/dy * xhat
        dL/dbias   = sum over every position of dL/dy
    """
    raise NotImplementedError


def multi_head_attention(x, w_in, b_in, w_out, b_out, n_head, causal=False):
    """Multi-head self-attention over x (B, T, C), as nn.MultiheadAttention and GPT's CausalSelfAttention.

    w_in: (3C, C), the rows of W_q, W_k and W_v stacked in that order; b_in: (3C,);
    w_out: (C, C) and b_out: (C,), the output projection; n_head divides C, each head of size hs = C / n_head:

        q, k, v = split(x w_in^T + b_in)                      three (B, T, C)
        head h uses features h*hs .. (h+1)*hs - 1 of each:    (B, n_head, T, hs)
        y_h = softmax(q_h k_h^T / sqrt(hs) [+ causal mask]) v_h
        out = concat(y_1, ..., y_n_head) w_out^T + b_out      (B, T, C)

    causal=True lets position i attend only to positions j <= i. Returns out, (B, T, C).
    """
    raise NotImplementedError
