"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019).

Adam keeps two running averages per parameter, of the gradient and of its
square, and steps each weight by the first over the square root of the second,
so every weight moves about ``lr`` per step whatever the scale of its gradient.
For a parameter p with gradient g at step t = 1, 2, ...:

    m_t   = beta1 * m_{t-1} + (1 - beta1) * g          first moment  ("exp_avg")
    v_t   = beta2 * v_{t-1} + (1 - beta2) * g^2        second moment ("exp_avg_sq")
    m_hat = m_t / (1 - beta1^t)                        bias corrections: m_0 = v_0 = 0
    v_hat = v_t / (1 - beta2^t)                          pull the early averages towards 0
    p     = p - lr * m_hat / (sqrt(v_hat) + eps)

Weight decay, two ways:

    Adam:  g = g + weight_decay * p     before the moments (an L2 penalty; its pull is then
                                        divided by sqrt(v_hat), so weights with large
                                        gradients are barely decayed)
    AdamW: p = p - lr * weight_decay * p   before the step, outside the moments ("decoupled":
                                        every weight shrinks by the same factor)

Both match ``torch.optim.Adam`` / ``torch.optim.AdamW`` step for step.
"""

import math

import numpy as np

from .. import kernels
from ..validation import check_value
from .optimizer import Optimizer


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    """One Adam step on NumPy arrays; ``param``, ``exp_avg`` and ``exp_avg_sq`` change in place.

    ``step`` is this step's number t, counted from 1.
    """
    if weight_decay != 0:
        grad = grad + weight_decay * param  # a new array: the caller's .grad is left alone
    exp_avg *= beta1
    exp_avg += (1 - beta1) * grad  # m_t
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad  # v_t
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    denom = np.sqrt(exp_avg_sq) / math.sqrt(bias_correction2) + eps  # sqrt(v_hat) + eps
    param -= (lr / bias_correction1) * exp_avg / denom  # lr * m_hat / (sqrt(v_hat) + eps)


def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    """One AdamW step: decay the weight by ``1 - lr * weight_decay``, then Adam without decay.

    That is ``param *= 1 - lr * weight_decay`` followed by ``adam_update(...,
    weight_decay=0)``; ``kernels.adamw_update`` (kernels/adamw.py) does both in
    one pass over memory with Numba, or as those NumPy lines without it.
    """
    kernels.adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay)


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)``, as ``torch.optim.Adam``.

    State per parameter: ``"step"`` (int), ``"exp_avg"`` and ``"exp_avg_sq"``
    (arrays shaped and typed like the parameter). See the module docstring for
    the formulas.
    """

    update = staticmethod(adam_update)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    checks = {"lr": (float, "[0, inf)"), "eps": (float, "(0, inf)"), "weight_decay": (float, "[0, inf)")}

    def _check_group(self, group, where):
        super()._check_group(group, where)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = tuple(check_value(f"{where}: betas[{i}]", b, float, "[0, 1)") for i, b in enumerate(betas))

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {
                        "step": 0, "exp_avg": np.zeros_like(p.data), "exp_avg_sq": np.zeros_like(p.data),
                    }
                state["step"] += 1
                self.update(
                    p.data, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"],
                    group["lr"], beta1, beta2, group["eps"], group["weight_decay"],
                )
        return loss


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)``, as ``torch.optim.AdamW``.

    Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before each
    Adam step, instead of adding ``weight_decay * p`` to the gradient.
    """

    update = staticmethod(adamw_update)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
