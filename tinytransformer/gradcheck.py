"""Checking analytic gradients against finite differences.

For a scalar function L(x), the central difference

    dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

has truncation error O(eps^2) (the even terms of the Taylor series cancel),
against O(eps) for the one-sided difference (L(x + eps e_i) - L(x)) / eps.
Rounding error grows like (machine epsilon) / eps, so in float64 an eps near
1e-6 balances the two (lesson 02 plots the curve).

A function with a non-scalar output is checked through L = sum(out * w) with
fixed random weights w, which tests every output element at once. Inputs with
more than ``max_elements`` elements are checked along random directions v
instead of element by element: dL/dx . v against (L(x + eps v) - L(x - eps v)) / (2 eps).
"""

import numpy as np

from .autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with finite differences."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-8, rtol=1e-6, max_elements=4096, n_directions=4, seed=0):
    """Compare ``fn``'s backward pass with central differences; return True or raise.

    ``inputs`` is a tensor or a sequence of tensors; those with
    ``requires_grad=True`` are checked and must be float64. ``fn(*inputs)``
    returns a tensor of any shape. An element passes when
    ``|analytic - numeric| <= atol + rtol * |numeric|``; a failure raises
    ``GradcheckError`` naming the worst element with both values.
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} has dtype {inputs[i].dtype}; finite differences need float64 "
                "(use x.double(), or module.double() for a layer)"
            )

    rng = np.random.default_rng(seed)
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    weights = rng.standard_normal(out.shape)

    def loss() -> float:
        with no_grad():
            return float(np.sum(fn(*inputs).data * weights))

    for i in checked:
        inputs[i].grad = None
    if not out.requires_grad:
        raise GradcheckError("gradcheck: fn's output does not depend on any input that requires grad")
    out.backward(weights.astype(out.dtype))
    analytic = [np.zeros(inputs[i].shape) if inputs[i].grad is None else inputs[i].grad.copy() for i in checked]

    worst = None  # (badness, description, analytic value, numeric value)
    for i, grad in zip(checked, analytic):
        x = inputs[i].data
        if x.size <= max_elements:
            for idx in np.ndindex(x.shape):
                original = x[idx]
                x[idx] = original + eps
                up = loss()
                x[idx] = original - eps
                down = loss()
                x[idx] = original
                numeric = (up - down) / (2 * eps)
                worst = _worse(worst, f"input {i}, element {idx}", grad[idx], numeric, atol, rtol)
        else:
            original = x.copy()
            for d in range(n_directions):
                v = rng.standard_normal(x.shape)
                v /= np.linalg.norm(v)
                x[...] = original + eps * v
                up = loss()
                x[...] = original - eps * v
                down = loss()
                x[...] = original
                numeric = (up - down) / (2 * eps)
                worst = _worse(worst, f"input {i}, random direction {d}", float(np.sum(grad * v)), numeric, atol, rtol)

    if worst is None:  # every checked input is empty: there is no gradient to compare
        return True
    badness, where, a, n = worst
    if badness > 1:
        raise GradcheckError(
            f"gradcheck failed at {where}: analytic {a:.10g}, numeric {n:.10g}, "
            f"|difference| {abs(a - n):.3g} > atol + rtol*|numeric| = {atol + rtol * abs(n):.3g}"
        )
    return True


def _worse(worst, where, a, n, atol, rtol):
    """Keep whichever of ``worst`` and this comparison is further out of tolerance."""
    badness = abs(a - n) / (atol + rtol * abs(n))
    if worst is None or badness > worst[0]:
        return badness, where, float(a), float(n)
    return worst
