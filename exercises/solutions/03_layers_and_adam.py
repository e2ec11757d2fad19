"""Solutions to lesson 03's exercises (exercises/03_layers_and_adam.py): read them after trying.

    tinytransformer exercises check 03 --solutions
"""

import math

import numpy as np


def linear_backward(grad, x, weight):
    g = grad.reshape(-1, grad.shape[-1])  # (N, out): every leading axis folded into the rows
    rows = x.reshape(-1, x.shape[-1])  # (N, in)
    grad_x = (g @ weight).reshape(x.shape)  # (..., in)
    grad_weight = g.T @ rows  # (out, N) @ (N, in) -> (out, in)
    grad_bias = g.sum(axis=0)  # (out,)
    return grad_x, grad_weight, grad_bias


def adam_moments(grad, m, v, t, beta1, beta2):
    """The new moments, and their bias-corrected values."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    return m, v, m / (1 - beta1**t), v / (1 - beta2**t)


def adam_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    g = grad + weight_decay * param  # L2: the decay is part of the gradient, so Adam rescales it too
    m, v, m_hat, v_hat = adam_moments(g, m, v, t, beta1, beta2)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adamw_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    param = param * (1 - lr * weight_decay)  # decoupled: every weight shrinks by the same factor
    m, v, m_hat, v_hat = adam_moments(grad, m, v, t, beta1, beta2)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def warmup_cosine_lr(step, lr, warmup_steps, total_steps, min_lr_ratio=0.1):
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if step > total_steps:
        return lr * min_lr_ratio
    s = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1 over the decay
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * (1 + math.cos(math.pi * s)) / 2)
