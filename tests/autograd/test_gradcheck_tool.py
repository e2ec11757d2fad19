"""tt.gradcheck itself: it passes correct ops, catches wrong ones, and says where and by how much."""

import re

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer import Function, GradcheckError


def leaf(values) -> tt.Tensor:
    return tt.Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


class SquareWrongAtOneElement(Function):
    """y = x^2, with a backward that is right everywhere except at element (1, 2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x * x

    @staticmethod
    def backward(ctx, grad):
        g = 2 * ctx.x * grad
        g[1, 2] += 0.5
        return g


class CubeWithSquaresDerivative(Function):
    """y = x^3, with the derivative of x^2 (a classic slip): wrong everywhere."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x**3

    @staticmethod
    def backward(ctx, grad):
        return 2 * ctx.x * grad


class ProductForgettingSecondInput(Function):
    """z = a * b, whose backward gives b the gradient of a."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.b, grad * ctx.b


def test_passes_correct_ops_and_returns_true(rng):
    x, w = leaf(rng.standard_normal((3, 4))), leaf(rng.standard_normal((4, 2)))
    assert tt.gradcheck(lambda x, w: (x @ w).tanh().softmax(axis=-1), [x, w]) is True
    assert tt.gradcheck(lambda x: (x * x).sum(), x) is True  # a single tensor, a scalar output


def test_names_the_worst_element_with_both_values(rng):
    x = leaf(rng.standard_normal((2, 4)))
    with pytest.raises(GradcheckError) as failure:
        tt.gradcheck(SquareWrongAtOneElement.apply, [x])
    message = str(failure.value)
    assert "input 0, element (1, 2)" in message
    analytic, numeric = (float(v) for v in re.search(r"analytic (\S+), numeric (\S+),", message).groups())
    assert abs(analytic - numeric - 0.5) < 1e-8  # the bug, exactly
    assert abs(numeric) > 1e-3  # the true derivative 2 x, scaled by gradcheck's random output weight


def test_catches_a_wrong_derivative_and_a_wrong_second_input(rng):
    with pytest.raises(GradcheckError, match="analytic .* numeric"):
        tt.gradcheck(CubeWithSquaresDerivative.apply, [leaf(rng.uniform(0.5, 2, 5))])
    a, b = leaf(rng.standard_normal(3)), leaf(rng.standard_normal(3) + 3)
    with pytest.raises(GradcheckError, match="input 1, element"):
        tt.gradcheck(ProductForgettingSecondInput.apply, [a, b])


def test_tolerances_decide_how_close_is_close_enough(rng):
    x = leaf(rng.uniform(1, 2, 4))
    slightly_wrong = lambda x: x * 2 + (x * 1e-4).detach() * x  # 1e-4 relative gradient error
    with pytest.raises(GradcheckError):
        tt.gradcheck(slightly_wrong, [x], rtol=1e-6, atol=1e-8)
    assert tt.gradcheck(slightly_wrong, [x], rtol=1e-3, atol=1e-8)


def test_a_too_large_eps_fails_on_curvature():
    x = leaf([1.0, 2.0])
    assert tt.gradcheck(lambda x: x.exp(), [x])
    with pytest.raises(GradcheckError):
        tt.gradcheck(lambda x: x.exp(), [x], eps=1e-1)  # truncation error ~ eps^2 f'''/6 >> rtol


def test_large_inputs_are_checked_along_random_directions(rng):
    x = leaf(rng.standard_normal((80, 80)))  # 6,400 elements > max_elements=4096
    calls = []

    def counted(fn):
        def wrapper(*args):
            calls.append(1)
            return fn(*args)
        return wrapper

    assert tt.gradcheck(counted(lambda x: (x.tanh() @ x).sum(axis=0)), [x], n_directions=3)
    assert len(calls) == 1 + 2 * 3  # one forward for the analytic gradient, two per direction
    wrong = leaf(rng.uniform(0.5, 2, (80, 80)))
    with pytest.raises(GradcheckError, match="input 0, random direction"):
        tt.gradcheck(CubeWithSquaresDerivative.apply, [wrong])


def test_max_elements_switches_between_the_two_modes(rng):
    x = leaf(rng.standard_normal(10))
    with pytest.raises(GradcheckError, match="element"):
        tt.gradcheck(CubeWithSquaresDerivative.apply, [x], max_elements=10)
    with pytest.raises(GradcheckError, match="random direction"):
        tt.gradcheck(CubeWithSquaresDerivative.apply, [x], max_elements=9)


def test_only_inputs_that_require_grad_are_checked_and_all_are_passed(rng):
    x, c = leaf(rng.standard_normal(3)), tt.Tensor(rng.standard_normal(3))
    assert tt.gradcheck(lambda x, c: x * c.exp(), [x, c])
    assert c.grad is None


def test_inputs_are_left_as_they_were(rng):
    values = rng.standard_normal((3, 3))
    x = leaf(values.copy())
    tt.gradcheck(lambda x: x.exp().sum(), [x])
    tt.gradcheck(lambda x: x.exp().sum(), [x], max_elements=4)
    np.testing.assert_array_equal(x.data, values)


def test_refuses_float32_inputs():
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"input 0 has dtype float32.*float64.*double\(\)"):
        tt.gradcheck(lambda x: x.exp(), [x])


def test_refuses_what_it_cannot_check():
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        tt.gradcheck(lambda x: x.exp(), [tt.Tensor(np.ones(2))])
    with pytest.raises(TypeError, match="must return a Tensor"):
        tt.gradcheck(lambda x: x.data.sum(), [leaf([1.0])])
    with pytest.raises(GradcheckError, match="does not depend"):
        tt.gradcheck(lambda x: x.detach() * 2, [leaf([1.0])])
