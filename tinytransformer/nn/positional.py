"""Positional encodings: how a Transformer learns where each token sits.

Attention itself is permutation-equivariant: shuffle the tokens and the
outputs shuffle the same way. Order enters only through these encodings:

- sinusoidal (Vaswani et al. 2017): a fixed table added to the embeddings;
- learned (GPT, Radford et al. 2018): a trained embedding per position, added;
- rotary, RoPE (Su et al. 2021): queries and keys rotated by an angle
  proportional to their position, so q . k depends on positions only through
  their difference.
"""

import numpy as np

from ..autograd import Function
from ..validation import check_value
from .embedding import Embedding
from .module import Module


def sinusoidal_positions(n_positions, dim, dtype=np.float32):
    """The (n_positions, dim) table of Vaswani et al. 2017, section 3.5:

        PE[pos, 2i]   = sin(pos / 10000^(2i/dim))
        PE[pos, 2i+1] = cos(pos / 10000^(2i/dim))

    Each pair of columns is a sinusoid of its own wavelength, from 2 pi up to
    10000 * 2 pi; PE[pos + k] is a fixed linear map (a rotation per pair) of
    PE[pos]. An odd ``dim`` ends with one sine column.
    """
    if n_positions < 0 or dim <= 0:
        raise ValueError(f"sinusoidal_positions: need n_positions >= 0 and dim > 0, got {n_positions}, {dim}")
    pos = np.arange(n_positions, dtype=np.float64)[:, None]  # (P, 1)
    two_i = np.arange(0, dim, 2, dtype=np.float64)  # (ceil(dim/2),)
    angle = pos / 10000.0 ** (two_i / dim)  # (P, ceil(dim/2))
    table = np.empty((n_positions, dim))
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle[:, : dim // 2])
    return table.astype(dtype)


def _check_positions(name, x, offset, max_len, dim):
    if x.ndim < 2 or x.shape[-1] != dim:
        raise ValueError(f"{name}: expected input (..., T, {dim}), got shape {x.shape}")
    if offset < 0 or offset + x.shape[-2] > max_len:
        raise ValueError(
            f"{name}: positions {offset}..{offset + x.shape[-2] - 1} exceed max_len={max_len} (input shape {x.shape})"
        )


class SinusoidalPositionalEncoding(Module):
    """x + PE[offset : offset + T] for x of shape (..., T, dim); PE is ``sinusoidal_positions``.

    The table is a buffer that is not saved in the state dict (it is a
    formula, not a weight), so checkpoints load the same with or without it.
    """

    def __init__(self, dim, max_len=5000, dtype=np.float32):
        super().__init__()
        dim = check_value("SinusoidalPositionalEncoding: dim", dim, int, "[1, inf)")
        max_len = check_value("SinusoidalPositionalEncoding: max_len", max_len, int, "[1, inf)")
        self.dim, self.max_len = dim, max_len
        self.register_buffer("pe", sinusoidal_positions(max_len, dim, dtype), persistent=False)

    def forward(self, x, offset=0):
        _check_positions("SinusoidalPositionalEncoding", x, offset, self.max_len, self.dim)
        return x + self.pe.data[offset : offset + x.shape[-2]].astype(x.dtype, copy=False)  # (..., T, dim)

    def extra_repr(self):
        return f"dim={self.dim}, max_len={self.max_len}"


class LearnedPositionalEmbedding(Embedding):
    """x + W[offset : offset + T]: an Embedding whose ids are the positions 0 .. max_len - 1.

    The weight (max_len, dim) is trained like any other and saved as ``weight``,
    GPT-2's ``wpe``. x has shape (..., T, dim).
    """

    def __init__(self, max_len, dim, dtype=np.float32):
        super().__init__(max_len, dim, dtype=dtype)
        self.max_len, self.dim = self.num_embeddings, self.embedding_dim  # checked by Embedding

    def forward(self, x, offset=0):
        _check_positions("LearnedPositionalEmbedding", x, offset, self.max_len, self.dim)
        positions = np.arange(offset, offset + x.shape[-2])  # (T,)
        return x + super().forward(positions)  # (..., T, dim)


def rotate_half(x):
    """(x1, x2) -> (-x2, x1) for the two halves of the last axis: a 90 degree turn of each pair (x1_i, x2_i)."""
    x1, x2 = np.split(x, 2, axis=-1)
    return np.concatenate([-x2, x1], axis=-1)


class Rotary(Function):
    """y = x * cos + rotate_half(x) * sin: each pair (x_i, x_{i+d/2}) turned by its angle.

    A rotation is orthogonal, so the backward pass is the rotation by the
    opposite angle: rotate_half is a 90 degree turn, its transpose is minus
    itself, and dL/dx = R(-theta) g = g * cos - rotate_half(g * sin); per pair,
    dx1 = g1 cos + g2 sin and dx2 = g2 cos - g1 sin.
    """

    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.cos, ctx.sin = cos, sin
        return x * cos + rotate_half(x) * sin

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.cos - rotate_half(grad * ctx.sin), None, None


def apply_rotary(x, cos, sin):
    """Rotate x (..., T, d) by per-position angles: ``cos``/``sin`` are (T, d) arrays from ``RotaryEmbedding``.

    Half-split convention (GPT-NeoX, LLaMA): dimension i is paired with
    dimension i + d/2, not with its neighbour i + 1 (the interleaved form of
    the paper). The two differ only by a fixed permutation of the dimensions.
    """
    shape, c_shape = x.shape, np.shape(cos)
    if x.ndim < 2 or shape[-1] % 2:
        raise ValueError(f"apply_rotary: x must be (..., T, d) with d even, got shape {shape}")
    if c_shape != np.shape(sin) or c_shape != shape[-2:]:
        raise ValueError(f"apply_rotary: cos {c_shape} and sin {np.shape(sin)} must both be (T, d) = {shape[-2:]}")
    cos = np.asarray(cos).astype(x.dtype, copy=False)
    sin = np.asarray(sin).astype(x.dtype, copy=False)
    return Rotary.apply(x, cos, sin)


class RotaryEmbedding(Module):
    """Rotary position embedding (Su et al. 2021, RoFormer).

    Pair i of a head (dimensions i and i + d/2, i < d/2) at position m is
    rotated by the angle m * theta_i with theta_i = base^(-2i/d):

        [y_i      ]   [cos m theta_i   -sin m theta_i] [x_i      ]
        [y_{i+d/2}] = [sin m theta_i    cos m theta_i] [x_{i+d/2}]

    Rotating q at position m and k at position n gives
    q' . k' = q^T R(m theta)^T R(n theta) k = q^T R((n - m) theta) k:
    the score depends only on n - m. Apply it to queries and keys, not values.
    """

    def __init__(self, head_dim, max_len=2048, base=10000.0, dtype=np.float32):
        super().__init__()
        head_dim = check_value("RotaryEmbedding: head_dim", head_dim, int, "[1, inf)")
        max_len = check_value("RotaryEmbedding: max_len", max_len, int, "[1, inf)")
        base = check_value("RotaryEmbedding: base", base, float, "(1, inf)")
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be even to form pairs, got {head_dim}")
        self.head_dim, self.max_len, self.base = head_dim, max_len, base
        theta = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (d/2,)
        angles = np.arange(max_len, dtype=np.float64)[:, None] * theta  # (max_len, d/2)
        angles = np.concatenate([angles, angles], axis=-1)  # (max_len, d): pair i shares angle i
        self.register_buffer("cos", np.cos(angles).astype(dtype), persistent=False)
        self.register_buffer("sin", np.sin(angles).astype(dtype), persistent=False)

    def forward(self, x, offset=0):
        """x (..., T, head_dim) at positions offset .. offset + T - 1, rotated."""
        _check_positions("RotaryEmbedding", x, offset, self.max_len, self.head_dim)
        T = x.shape[-2]
        return apply_rotary(x, self.cos.data[offset : offset + T], self.sin.data[offset : offset + T])

    def extra_repr(self):
        return f"head_dim={self.head_dim}, max_len={self.max_len}, base={self.base}"

