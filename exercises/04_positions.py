"""Exercises for lesson 04, embeddings and positions: an embedding's gradient, sinusoidal and rotary positions.

Replace each `raise NotImplementedError` with your code, then check it from the project root:

    tinytransformer exercises check 04

The solutions are in exercises/solutions/04_positions.py: try first.
"""

import numpy as np  # noqa: F401 - for your code


def embedding_backward(grad, ids, num_embeddings):
    """The gradient of the embedding table W for the lookup y = W[ids].

    ids: integer ids of any shape S (even ()); grad: dL/dy, of shape S + (D,).
    Returns dL/dW, (num_embeddings, D): a scatter-add,

        dL/dW[v] = sum of grad[s] over every position s with ids[s] == v

    so a row looked up twice gets both gradients and a row never looked up gets zeros. (Beware:
    ``out[ids] += rows`` adds a repeated id's rows only once; ``np.add.at`` adds them all.)
    """
    raise NotImplementedError


def sinusoidal_positions(n_positions, dim):
    """The (n_positions, dim) table of sinusoidal positions (Vaswani et al. 2017, section 3.5), float64:

        PE[pos, 2i]   = sin(pos / 10000^(2i/dim))
        PE[pos, 2i+1] = cos(pos / 10000^(2i/dim))

    for pos = 0 .. n_positions - 1. An odd ``dim`` ends with a sine column (and has no cosine to pair it).
    """
    raise NotImplementedError


def apply_rotary(x, offset=0, base=10000.0):
    """Rotary positions (RoPE, Su et al. 2021) applied to x of shape (..., T, d), d even, float64.

    The vector at position m = offset + t (t = 0 .. T-1 along axis -2) has its pairs of dimensions
    (i, i + d/2), for i < d/2, each turned by the angle m * theta_i, theta_i = base^(-2i/d):

        y_i       = x_i cos(m theta_i) - x_{i+d/2} sin(m theta_i)
        y_{i+d/2} = x_i sin(m theta_i) + x_{i+d/2} cos(m theta_i)

    (the half-split pairing of GPT-NeoX and LLaMA). Returns y, of x's shape.
    """
    raise NotImplementedError
