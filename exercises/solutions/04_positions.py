"""Solutions to lesson 04's exercises (exercises/04_positions.py): read them after trying.

    tinytransformer exercises check 04 --solutions
"""

import numpy as np


def embedding_backward(grad, ids, num_embeddings):
    dim = grad.shape[-1]
    grad_weight = np.zeros((num_embeddings, dim))
    np.add.at(grad_weight, ids.reshape(-1), grad.reshape(-1, dim))  # each position adds into its id's row
    return grad_weight


def sinusoidal_positions(n_positions, dim):
    pos = np.arange(n_positions)[:, None]  # (P, 1)
    two_i = np.arange(0, dim, 2)  # (ceil(dim/2),) the even columns 2i
    angle = pos / 10000.0 ** (two_i / dim)  # (P, ceil(dim/2))
    table = np.zeros((n_positions, dim))
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle[:, : dim // 2])  # an odd dim has one sine more than cosines
    return table


def apply_rotary(x, offset=0, base=10000.0):
    T, d = x.shape[-2:]
    half = d // 2
    theta = base ** (-np.arange(half) * 2 / d)  # (d/2,)
    angle = np.arange(offset, offset + T)[:, None] * theta  # (T, d/2): m theta_i
    cos, sin = np.cos(angle), np.sin(angle)
    x1, x2 = x[..., :half], x[..., half:]  # (..., T, d/2) each: the two halves of every pair
    return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)  # (..., T, d)
