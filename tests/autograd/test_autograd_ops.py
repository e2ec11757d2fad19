"""Every autograd op's backward against central differences (tt.gradcheck, float64, every element).

Shapes come from hypothesis so that broadcasting (size-1 axes, missing leading axes) and axis
arguments are exercised; values come from a NumPy generator seeded by hypothesis. Non-smooth ops
(relu, max) get inputs kept well away from their kinks and ties.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytransformer as tt

TOL = dict(rtol=1e-6, atol=1e-8)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**32 - 1)
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)


def leaf(values) -> tt.Tensor:
    return tt.Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def normal(seed, shape, low=None) -> tt.Tensor:
    """Standard normal values; with ``low``, magnitudes at least ``low`` (random signs)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if low is not None:
        x = np.sign(x + (x == 0)) * (low + np.abs(x))
    return leaf(x)


def positive(seed, shape) -> tt.Tensor:
    return leaf(np.random.default_rng(seed).uniform(0.5, 2.0, shape))


def distinct(seed, shape) -> tt.Tensor:
    """Values 0.1 apart in random order: no ties, so max has a unique, stable winner."""
    n = int(np.prod(shape))
    return leaf(0.1 * np.random.default_rng(seed).permutation(n).reshape(shape) - 0.05 * n)


@st.composite
def shape_and_axis(draw, min_dims=1):
    """A shape, and an axis argument for it: None, an int (maybe negative) or a tuple."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=4, min_side=1, max_side=4))
    ndim = len(shape)
    axis = draw(st.none() | st.integers(-ndim, ndim - 1) | hnp.valid_tuple_axes(ndim, min_size=1))
    return shape, axis


def reduced_count(shape, axis):
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
    return int(np.prod([shape[a] for a in axes]))


# ---------------------------------------------------------------- arithmetic
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
}


@pytest.mark.parametrize("op", BINARY)
@given(shapes=pairs, seed=seeds)
def test_binary_ops_broadcast_their_gradients_back(op, shapes, seed):
    (shape_a, shape_b), out_shape = shapes
    a = positive(seed, shape_a) if op == "pow" else normal(seed, shape_a)
    b = normal(seed + 1, shape_b, low=0.5) if op == "div" else normal(seed + 1, shape_b)
    assert BINARY[op](a, b).shape == out_shape
    assert tt.gradcheck(BINARY[op], [a, b], **TOL)


@pytest.mark.parametrize(
    "fn",
    [lambda x: x + 2.5, lambda x: 3.0 - x, lambda x: x * -1.5, lambda x: x / 4.0, lambda x: 2.0 / x,
     lambda x: x**3, lambda x: x**-2, lambda x: x**0.5, lambda x: 1.5**x, lambda x: -x],
    ids=["add", "rsub", "mul", "div", "rdiv", "cube", "inverse_square", "sqrt_power", "rpow", "neg"],
)
@given(shape=shapes, seed=seeds)
def test_arithmetic_with_python_scalars(fn, shape, seed):
    assert tt.gradcheck(fn, [positive(seed, shape)], **TOL)


@st.composite
def matmul_shapes(draw):
    """Operand shapes for a @ b: vectors, matrices, and batches that broadcast."""
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    (batch_a, batch_b), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    a = (k,) if draw(st.booleans()) else (*batch_a, m, k)
    b = (k,) if draw(st.booleans()) else (*batch_b, k, n)
    return a, b


@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul(shapes, seed):
    shape_a, shape_b = shapes
    a, b = normal(seed, shape_a), normal(seed + 1, shape_b)
    np.testing.assert_allclose((a @ b).data, a.data @ b.data, rtol=1e-12)
    assert tt.gradcheck(lambda a, b: a @ b, [a, b], **TOL)


def test_matmul_with_a_shared_weight_matrix(rng):
    x, w = leaf(rng.standard_normal((2, 3, 4))), leaf(rng.standard_normal((4, 5)))  # (B, T, C) @ (C, C')
    assert tt.gradcheck(lambda x, w: x @ w, [x, w], **TOL)
    assert tt.gradcheck(lambda w, x: x @ w.T, [leaf(rng.standard_normal((5, 4))), x], **TOL)


# -------------------------------------------------------------- elementwise
UNARY = {
    "exp": (lambda x: x.exp(), normal),
    "log": (lambda x: x.log(), positive),
    "sqrt": (lambda x: x.sqrt(), positive),
    "tanh": (lambda x: x.tanh(), normal),
    "sigmoid": (lambda x: x.sigmoid(), normal),
    "relu": (lambda x: x.relu(), lambda seed, shape: normal(seed, shape, low=0.1)),
    "gelu": (lambda x: x.gelu(), normal),
    "gelu_tanh": (lambda x: x.gelu(approximate="tanh"), normal),
    "astype": (lambda x: x.float().double() * 2, normal),
}


@pytest.mark.parametrize("op", UNARY)
@given(shape=shapes, seed=seeds)
def test_elementwise_ops(op, shape, seed):
    fn, make = UNARY[op]
    if op == "astype":  # the float32 round trip rounds x +- eps, so a wider eps and tolerance
        assert tt.gradcheck(fn, [make(seed, shape)], eps=1e-2, atol=1e-6, rtol=1e-4)
    else:
        assert tt.gradcheck(fn, [make(seed, shape)], **TOL)


def test_sigmoid_and_gelu_are_finite_far_out():
    x = leaf([-800.0, -40.0, 0.0, 40.0, 800.0])
    y = x.sigmoid() + x.gelu() + x.gelu(approximate="tanh")
    y.sum().backward()
    assert np.isfinite(y.data).all() and np.isfinite(x.grad).all()
    np.testing.assert_allclose(x.sigmoid().data[[0, -1]], [0.0, 1.0])


# --------------------------------------------------------------- reductions
REDUCTIONS = {
    "sum": (lambda x, axis, keepdims: x.sum(axis=axis, keepdims=keepdims), normal),
    "mean": (lambda x, axis, keepdims: x.mean(axis=axis, keepdims=keepdims), normal),
    "max": (lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims), distinct),
    "var": (lambda x, axis, keepdims: x.var(axis=axis, keepdims=keepdims), normal),
    "var_population": (lambda x, axis, keepdims: x.var(axis=axis, keepdims=keepdims, correction=0), normal),
    "logsumexp": (lambda x, axis, keepdims: x.logsumexp(axis=axis, keepdims=keepdims), normal),
}


@pytest.mark.parametrize("op", REDUCTIONS)
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reductions_over_axes(op, case, keepdims, seed):
    shape, axis = case
    fn, make = REDUCTIONS[op]
    assume(op != "var" or reduced_count(shape, axis) >= 2)  # the unbiased variance needs two values
    x = make(seed, shape)
    expected = np.sum(np.ones(shape), axis=axis, keepdims=keepdims).shape
    assert fn(x, axis, keepdims).shape == expected
    assert tt.gradcheck(lambda x: fn(x, axis, keepdims), [x], **TOL)


def test_max_shares_the_gradient_among_ties():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


# ------------------------------------------------------------------ softmax
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@given(case=shape_and_axis(), seed=seeds)
def test_softmax_family(op, case, seed):
    shape, axis = case
    axis = -1 if axis is None or isinstance(axis, tuple) else axis
    assert tt.gradcheck(lambda x: getattr(x, op)(axis=axis), [normal(seed, shape)], **TOL)


def test_softmax_family_is_stable_for_huge_logits():
    x = leaf([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]])
    assert np.isfinite(x.softmax(axis=-1).data).all()
    np.testing.assert_allclose(x.softmax(axis=-1).data[0], [1, 0, 0])
    np.testing.assert_allclose(x.log_softmax(axis=-1).data[0], [0, -1e4, -2e4])
    np.testing.assert_allclose(x.logsumexp(axis=-1).data, [1e4, -1e4 + np.log(3)])
    x.log_softmax(axis=-1)[:, 0].sum().backward()  # d log p_0 / dx = onehot(0) - p
    np.testing.assert_allclose(x.grad, [[0, 0, 0], [2 / 3, -1 / 3, -1 / 3]], atol=1e-15)


# -------------------------------------------------------------------- shape
@given(shape=shapes, seed=seeds, data=st.data())
def test_reshape_permute_transpose(shape, seed, data):
    x = normal(seed, shape)
    order = data.draw(st.permutations(range(len(shape))))
    axis0, axis1 = data.draw(st.integers(-len(shape), len(shape) - 1)), data.draw(st.integers(0, len(shape) - 1))
    assert tt.gradcheck(lambda x: x.reshape(-1, 1) * 2, [x], **TOL)
    assert tt.gradcheck(lambda x: x.reshape(tuple(reversed(shape))).exp(), [x], **TOL)
    assert tt.gradcheck(lambda x: x.permute(*order).tanh(), [x], **TOL)
    assert tt.gradcheck(lambda x: x.transpose(axis0, axis1).exp(), [x], **TOL)
    assert tt.gradcheck(lambda x: tt.swapaxes(x, axis1, axis0) * 3, [x], **TOL)
    assert tt.gradcheck(lambda x: x.T.tanh(), [x], **TOL)
    assert tt.gradcheck(lambda x: x.unsqueeze(0).squeeze(0).exp(), [x], **TOL)
    np.testing.assert_array_equal(x.permute(*order).data, np.transpose(x.data, order))
    np.testing.assert_array_equal(x.T.data, x.data.T)


@given(shape=shapes, seed=seeds, data=st.data())
def test_basic_indexing_and_slicing(shape, seed, data):
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True))
    x = normal(seed, shape)
    np.testing.assert_array_equal(x[index].data, x.data[index])
    assert tt.gradcheck(lambda x: x[index].exp(), [x], **TOL)


@given(shape=shapes, seed=seeds, data=st.data())
def test_integer_array_indexing_scatter_adds_repeats(shape, seed, data):
    idx_shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=5))
    idx = np.random.default_rng(seed).integers(-shape[0], shape[0], idx_shape)  # repeats and negatives
    x = normal(seed, shape)
    np.testing.assert_array_equal(x[idx].data, x.data[idx])
    assert tt.gradcheck(lambda x: x[idx] * x[idx], [x], **TOL)
    assert tt.gradcheck(lambda x: x[tt.Tensor(idx)].tanh(), [x], **TOL)
    if len(shape) > 1:  # gather along the last axis, one index per row
        cols = np.random.default_rng(seed + 1).integers(0, shape[-1], shape[:-1])
        rows = tuple(np.indices(shape[:-1]))
        assert tt.gradcheck(lambda x: x[(*rows, cols)].exp(), [x], **TOL)
        assert tt.gradcheck(lambda x: x[..., [0, 0, -1]].exp(), [x], **TOL)


def test_gather_backward_counts_every_read():
    x = leaf([10.0, 20.0, 30.0])
    x[np.array([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])


def test_boolean_mask_indexing(rng):
    x = leaf(rng.standard_normal((3, 4)))
    mask = x.data > 0
    assert tt.gradcheck(lambda x: x[mask].exp(), [x], **TOL)
    assert tt.gradcheck(lambda x: x[x > 0].exp(), [x], **TOL)


@given(case=shape_and_axis(), sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=seeds)
def test_concatenate_stack_split(case, sizes, seed):
    shape, axis = case
    axis = 0 if axis is None or isinstance(axis, tuple) else axis

    def sized(n):  # ``shape`` with n along ``axis``
        shape_ = list(shape)
        shape_[axis] = n
        return tuple(shape_)

    parts = [normal(seed + i, sized(n)) for i, n in enumerate(sizes)]
    assert tt.gradcheck(lambda *ps: tt.concatenate(ps, axis=axis).exp(), parts, **TOL)
    same = [normal(seed + i, shape) for i in range(len(sizes))]
    assert tt.gradcheck(lambda *ps: tt.stack(ps, axis=axis).tanh(), same, **TOL)
    whole = normal(seed, sized(sum(sizes)))
    assert [p.shape[axis] for p in whole.split(sizes, axis=axis)] == sizes
    weighted = lambda w: tt.concatenate([p * (i + 1) for i, p in enumerate(w.split(sizes, axis=axis))], axis=axis)
    assert tt.gradcheck(weighted, [whole], **TOL)
    assert tt.gradcheck(lambda w: w.split(2, axis=axis)[-1].exp(), [whole], **TOL)


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=4), seed=seeds)
def test_where_broadcasts(shapes, seed):
    (shape_c, shape_a, shape_b), out_shape = shapes
    cond = np.random.default_rng(seed).random(shape_c) > 0.5
    a, b = normal(seed, shape_a), normal(seed + 1, shape_b)
    assert tt.where(cond, a, b).shape == out_shape
    np.testing.assert_array_equal(tt.where(cond, a, b).data, np.where(cond, a.data, b.data))
    assert tt.gradcheck(lambda a, b: tt.where(cond, a, b), [a, b], **TOL)
    assert tt.gradcheck(lambda a: tt.where(cond, a, 0.0).exp(), [a], **TOL)


@given(shape=shapes, seed=seeds, data=st.data())
def test_masked_fill(shape, seed, data):
    kept = data.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    drop = data.draw(st.integers(0, len(shape)))
    mask_shape = tuple(n if keep else 1 for n, keep in zip(shape, kept))[drop:]  # broadcasts to shape
    mask = np.random.default_rng(seed).random(mask_shape) > 0.5
    x = normal(seed, shape)
    np.testing.assert_array_equal(x.masked_fill(mask, -1e9).data, np.where(mask, -1e9, x.data))
    assert tt.gradcheck(lambda x: x.masked_fill(mask, -1e9).softmax(axis=-1), [x], **TOL)
