"""Checks of exercises/02_gradcheck.py: central differences, softmax's backward, cross-entropy's gradient.

The central difference is held to autograd's exact gradients of smooth functions, at a step ``eps`` where a
one-sided difference is visibly worse; the two backward passes to the library's (``Softmax``,
``cross_entropy``) and to central differences (``tinytransformer.gradcheck``).
"""

import numpy as np

from ..autograd import Tensor
from ..nn.functional import cross_entropy
from .checking import Check, ExerciseFailure, expect_close, expect_gradcheck, expect_shape, shapes, with_backward

# (name, f on tensors): smooth functions whose exact gradient autograd gives
FUNCTIONS = [
    ("sum(tanh(x) * x)", lambda t: (t.tanh() * t).sum()),
    ("sum(x^3) / 3", lambda t: (t * t * t).sum() / 3.0),
    ("logsumexp(x)", lambda t: t.reshape(-1).logsumexp()),
]
POINT_SHAPES = [(), (1,), (3, 4), (2, 1, 3)]
EPS = 1e-4  # a one-sided difference is off by about eps * f''/2 ~ 1e-4 here; a central one by eps^2 f'''/6 ~ 1e-8


def _on_arrays(f):
    """f on tensors as a function of an array to a float, the kind ``central_difference`` takes."""
    return lambda x: float(f(Tensor(np.asarray(x, dtype=np.float64))).data)


def check_central_difference(central_difference):
    rng = np.random.default_rng(3)
    for name, f in FUNCTIONS:
        for shape in POINT_SHAPES:
            x = rng.uniform(-1.5, 1.5, shape)
            t = Tensor(x.copy(), requires_grad=True)
            f(t).backward()
            case = f"{shapes(x=x)}, f(x) = {name}, eps = {EPS}"
            given = x.copy()
            numeric = central_difference(_on_arrays(f), given, eps=EPS)
            if not np.array_equal(given, x):
                raise ExerciseFailure(f"x was changed by the call (put each element back after moving it), {case}")
            expect_close("the numeric gradient", numeric, t.grad, case, atol=1e-6, rtol=1e-6,
                         source="the exact gradient, from autograd")


SOFTMAX_SHAPES = [(5,), (1,), (3, 4), (2, 3, 5), (4, 1)]


def _softmax_saving_y(x):
    """softmax(x) over the last axis, and what its backward receives: y."""
    y = Tensor(x).softmax(axis=-1).data
    return y, (y,)


def check_softmax_backward(softmax_backward):
    rng = np.random.default_rng(4)
    for shape in SOFTMAX_SHAPES:
        x = 2 * rng.standard_normal(shape)
        y = Tensor(x).softmax(axis=-1).data
        grad = rng.standard_normal(shape)
        case = shapes(x=x) + " (softmax over the last axis)"
        got = expect_shape("dL/dx", softmax_backward(grad.copy(), y.copy()), shape, case)
        fn = with_backward(_softmax_saving_y, softmax_backward)
        expect_gradcheck(fn, [Tensor(x.copy(), requires_grad=True)], case)
        t = Tensor(x.copy(), requires_grad=True)
        t.softmax(axis=-1).backward(grad)
        expect_close("dL/dx", got, t.grad, case)


CROSS_ENTROPY_SHAPES = [(4, 5), (1, 7), (8, 3), (1, 1)]


def _cross_entropy_with_backward(targets, cross_entropy_backward):
    """The library's loss of logits for these ``targets``, with the learner's gradient as its backward."""

    def loss(logits):
        return np.asarray(cross_entropy(Tensor(logits), targets).data), (logits,)

    def backward(grad, logits):  # grad: dL/dloss, a number
        return grad * np.asarray(cross_entropy_backward(logits.copy(), targets.copy()))

    return with_backward(loss, backward)


def check_cross_entropy_backward(cross_entropy_backward):
    rng = np.random.default_rng(5)
    for n, c in CROSS_ENTROPY_SHAPES:
        logits, targets = 2 * rng.standard_normal((n, c)), rng.integers(0, c, n)
        case = shapes(logits=logits, targets=targets) + " (the mean over rows)"
        got = expect_shape("dL/dlogits", cross_entropy_backward(logits.copy(), targets.copy()), (n, c), case)
        fn = _cross_entropy_with_backward(targets, cross_entropy_backward)
        expect_gradcheck(fn, [Tensor(logits.copy(), requires_grad=True)], case)
        t = Tensor(logits.copy(), requires_grad=True)
        cross_entropy(t, targets).backward()
        expect_close("dL/dlogits", got, t.grad, case)


CHECKS = [
    Check("central_difference", check_central_difference),
    Check("softmax_backward", check_softmax_backward),
    Check("cross_entropy_backward", check_cross_entropy_backward),
]
