r"""One AdamW step (Loshchilov & Hutter 2019), in place, in the order torch.optim.AdamW computes it.

For a parameter p with gradient g at step t = 1, 2, ...:

    p   = p * (1 - lr * weight_decay)                  decoupled weight decay
    m   = m + (1 - beta1) (g - m)                      = beta1 m + (1 - beta1) g   ("exp_avg")
    v   = beta2 v + (1 - beta2) g^2                    ("exp_avg_sq")
    p   = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

``param``, ``exp_avg`` and ``exp_avg_sq`` are updated in place; ``grad`` is
only read. The Numba kernel does all four lines in one pass over memory,
where NumPy makes a pass (and a temporary) per operation.
"""

import math

import numpy as np

from .backend import get_backend
from .jit import numba_kernel, prange


def adamw_update_numpy(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    param *= 1 - lr * weight_decay
    exp_avg += (1 - beta1) * (grad - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    step_size = lr / (1 - beta1**step)
    denom = np.sqrt(exp_avg_sq) / math.sqrt(1 - beta2**step) + eps
    param -= step_size * exp_avg / denom


@numba_kernel(parallel=True)
def adamw_update_numba(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    """The same as adamw_update_numpy on flat (n,) arrays, one element per parallel iteration."""
    decay = 1.0 - lr * weight_decay
    step_size = lr / (1.0 - beta1**step)
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
    for i in prange(param.size):
        g = grad[i]
        m = exp_avg[i] + (1.0 - beta1) * (g - exp_avg[i])
        v = beta2 * exp_avg_sq[i] + (1.0 - beta2) * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] = param[i] * decay - step_size * m / (math.sqrt(v) / bias_correction2_sqrt + eps)


def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    """One AdamW step on arrays of one shape and dtype; ``step`` counts from 1."""
    if step < 1:
        raise ValueError(f"adamw_update: step counts from 1, got {step}")
    for name, a in (("param", param), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or not a.flags.c_contiguous or not a.flags.writeable:
            raise TypeError(f"adamw_update: {name} must be a writeable C-contiguous float array (it is updated in place)")
        if a.shape != param.shape or a.dtype != param.dtype:
            raise ValueError(f"adamw_update: {name} is {a.dtype} {a.shape} but param is {param.dtype} {param.shape}")
    if np.shape(grad) != param.shape:
        raise ValueError(f"adamw_update: grad has shape {np.shape(grad)} but param has {param.shape}")
    args = (int(step), float(lr), float(beta1), float(beta2), float(eps), float(weight_decay))
    if get_backend() == "numba":
        flat = lambda a: a.reshape(-1)  # a view: the arrays are C-contiguous
        grad = np.ascontiguousarray(grad, dtype=param.dtype)
        adamw_update_numba(flat(param), flat(grad), flat(exp_avg), flat(exp_avg_sq), *args)
    else:
        adamw_update_numpy(param, np.asarray(grad, dtype=param.dtype), exp_avg, exp_avg_sq, *args)
