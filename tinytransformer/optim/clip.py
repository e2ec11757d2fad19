"""Gradient clipping by the global norm (Pascanu et al. 2013), as ``torch.nn.utils.clip_grad_norm_``.

All gradients are seen as one long vector g. If its norm is above ``max_norm``,
every gradient is scaled by the same factor, so the direction is kept and only
the step is shortened:

    total = || (||g_1||, ||g_2||, ...) ||          the norm of the per-tensor norms
    g_i   = g_i * min(1, max_norm / (total + 1e-6))

A single bad batch then cannot throw the weights far away.
"""

import math

import numpy as np

from ..autograd import Tensor


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients of ``parameters`` in place so their total norm is at most ``max_norm``.

    ``parameters`` is a Tensor or an iterable of them; those without a gradient
    are skipped. ``norm_type`` is p > 0 of the p-norm (``float("inf")`` for the
    largest absolute value). Returns the total norm before clipping as a NumPy
    scalar in the gradients' dtype (where torch returns a 0-d tensor: ``float(n)``
    and ``n.item()`` work on both); 0.0 when no parameter has a gradient.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not max_norm >= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 (or float('inf')), got {norm_type}")
    if not grads:
        return np.float32(0.0)
    norms = np.stack([_vector_norm(g, norm_type) for g in grads])  # (number of tensors,)
    total_norm = _vector_norm(norms, norm_type)
    if error_if_nonfinite and not np.isfinite(total_norm):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total_norm}, "
            "so they cannot be clipped; pass error_if_nonfinite=False to scale them anyway"
        )
    clip_coef = min(max_norm / (total_norm + 1e-6), 1.0)
    for g in grads:
        g *= clip_coef
    return total_norm


def _vector_norm(x, norm_type):
    """The p-norm of all elements of ``x`` as one vector, in ``x``'s dtype."""
    x = np.abs(x)
    if x.size == 0:
        return x.dtype.type(0)
    if math.isinf(norm_type):
        return x.max()
    return (x**norm_type).sum() ** (1 / norm_type)
