"""Stochastic gradient descent, with momentum, Nesterov momentum and weight decay.

The update for one parameter p with gradient g, at step t (PyTorch's form):

    g   = g + weight_decay * p                        (L2 penalty folded into the gradient)
    b_t = g                                           at the first step
    b_t = momentum * b_{t-1} + (1 - dampening) * g    after it
    d   = g + momentum * b_t    if nesterov else b_t  (Sutskever et al. 2013)
    p   = p - lr * d

With ``momentum=0`` this is plain gradient descent, p = p - lr * g.
"""

from .optimizer import Optimizer


def sgd_update(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov):
    """One SGD step on NumPy arrays: updates ``param`` in place, returns the momentum buffer.

    ``momentum_buffer`` is None at the first step (and stays None without momentum).
    """
    if weight_decay != 0:
        grad = grad + weight_decay * param  # a new array: the caller's .grad is left alone
    if momentum != 0:
        if momentum_buffer is None:
            momentum_buffer = grad.copy()
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1 - dampening) * grad
        grad = grad + momentum * momentum_buffer if nesterov else momentum_buffer
    param -= lr * grad
    return momentum_buffer


class SGD(Optimizer):
    """``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False)``, as ``torch.optim.SGD``.

    State per parameter: ``"momentum_buffer"`` (an array, or None before the first
    step and without momentum). See ``sgd_update`` for the formulas.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    checks = {"lr": (float, "[0, inf)"), "momentum": (float, "[0, inf)"), "dampening": (float, "[0, 1]"),
              "weight_decay": (float, "[0, inf)")}

    def _check_group(self, group, where):
        super()._check_group(group, where)
        if not isinstance(group["nesterov"], bool):
            raise ValueError(f"{where}: nesterov must be True or False, got {group['nesterov']!r}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"{where}: nesterov=True needs momentum > 0 and dampening == 0, got momentum={group['momentum']}, "
                f"dampening={group['dampening']}"
            )

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(p, {"momentum_buffer": None})
                state["momentum_buffer"] = sgd_update(
                    p.data, p.grad, state["momentum_buffer"], group["lr"], group["momentum"],
                    group["dampening"], group["weight_decay"], group["nesterov"],
                )
        return loss
