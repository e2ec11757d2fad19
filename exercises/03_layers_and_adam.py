"""Exercises for lesson 03, layers and Adam: a Linear layer's backward, Adam, AdamW, and the lr schedule.

Replace each `raise NotImplementedError` with your code, then check it from the project root:

    tinytransformer exercises check 03

The solutions are in exercises/solutions/03_layers_and_adam.py: try first.
"""

import math  # noqa: F401 - for your code

import numpy as np  # noqa: F401 - for your code


def linear_backward(grad, x, weight):
    """The backward pass of the Linear layer y = x W^T + b.

    x: (..., in), any number of leading axes (even none: one vector); weight W: (out, in);
    grad: dL/dy, (..., out). Returns (dL/dx, dL/dW, dL/db) of shapes (..., in), (out, in), (out,):

        dL/dx = dL/dy @ W        dL/dW = (dL/dy)^T @ x        dL/db = sum of dL/dy
                                 (both sums over every row: fold the leading axes into one, N rows)
    """
    raise NotImplementedError


def adam_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """One step of Adam (Kingma & Ba 2015) with L2 weight decay, as torch.optim.Adam.

    param, grad, m, v: arrays of one shape (m and v: the running moments, zeros before step 1);
    t: this step's number, counted from 1. Returns (new param, new m, new v):

        g     = grad + weight_decay * param        L2: the decay joins the gradient
        m     = beta1 * m + (1 - beta1) * g
        v     = beta2 * v + (1 - beta2) * g^2
        m_hat = m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)
        param = param - lr * m_hat / (sqrt(v_hat) + eps)
    """
    raise NotImplementedError


def adamw_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """One step of AdamW (Loshchilov & Hutter 2019), as torch.optim.AdamW: the same arguments as adam_step.

    The decay is decoupled from the gradient: first shrink the weight,

        param = param * (1 - lr * weight_decay)

    then take adam_step's update with g = grad (the moments never see the decay).
    Returns (new param, new m, new v).
    """
    raise NotImplementedError


def warmup_cosine_lr(step, lr, warmup_steps, total_steps, min_lr_ratio=0.1):
    """The learning rate at ``step`` (counted from 0) of a linear warmup and a cosine decay, as a float.

        step < warmup_steps:                lr * (step + 1) / warmup_steps
        warmup_steps <= step <= total_steps: lr * (r + (1 - r) * (1 + cos(pi * s)) / 2),  r = min_lr_ratio,
                                            s = (step - warmup_steps) / (total_steps - warmup_steps)
                                            (divide by 1 instead when total_steps == warmup_steps)
        step > total_steps:                 lr * r
    """
    raise NotImplementedError
