"""The same expressions in tinytransformer and in PyTorch autograd (float64): same values, same gradients.

Each expression is evaluated on the same leaves in both libraries and backpropagated from the same
random upstream gradient, so the whole vector-Jacobian product is compared, not just the gradient
of a sum. Where both libraries spell an expression the same way, one lambda serves both.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytransformer as tt

TOL = dict(rtol=1e-12, atol=1e-12)


def run_tt(fn, arrays, seed=1):
    leaves = [tt.Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward(np.random.default_rng(seed).standard_normal(out.shape))
    return out.data, [np.zeros(a.shape) if x.grad is None else x.grad for a, x in zip(arrays, leaves)]


def run_torch(fn, arrays, seed=1):
    leaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward(torch.from_numpy(np.random.default_rng(seed).standard_normal(tuple(out.shape))))
    return out.detach().numpy(), [np.zeros(a.shape) if x.grad is None else x.grad.numpy() for a, x in zip(arrays, leaves)]


def assert_same(tt_fn, torch_fn, arrays):
    value, grads = run_tt(tt_fn, arrays)
    expected_value, expected_grads = run_torch(torch_fn or tt_fn, arrays)
    assert value.dtype == np.float64 and value.shape == expected_value.shape
    np.testing.assert_allclose(value, expected_value, **TOL)
    for i, (g, expected) in enumerate(zip(grads, expected_grads)):
        np.testing.assert_allclose(g, expected, **TOL, err_msg=f"gradient of input {i}")


rng = np.random.default_rng(0)
normal = lambda *shape: rng.standard_normal(shape)
positive = lambda *shape: rng.uniform(0.5, 2.0, shape)
away_from_zero = lambda *shape: np.sign(normal(*shape)) * positive(*shape)
distinct = lambda *shape: 0.1 * rng.permutation(math.prod(shape)).reshape(shape) - 1.0
ids = np.array([[0, 2, 2], [1, 0, 3]])  # repeats, so the scatter-add is exercised
cond = rng.random((3, 1)) > 0.5
causal = np.triu(np.ones((4, 4), dtype=bool), k=1)

# (name, tinytransformer expression, torch expression or None when spelled the same, inputs)
CASES = [
    ("add", lambda a, b: a + b, None, [normal(2, 1, 3), normal(4, 3)]),
    ("sub", lambda a, b: a - b, None, [normal(3), normal(2, 3)]),
    ("rsub_scalar", lambda a: 1.5 - a, None, [normal(2, 3)]),
    ("mul", lambda a, b: a * b, None, [normal(2, 1), normal(1, 3)]),
    ("div", lambda a, b: a / b, None, [normal(4, 1, 3), away_from_zero(2, 1)]),
    ("rdiv_scalar", lambda a: 2.0 / a, None, [away_from_zero(5)]),
    ("pow", lambda a, b: a**b, None, [positive(2, 3), normal(3)]),
    ("pow_scalar", lambda a: a**3 + a**-1.5, None, [positive(2, 3)]),
    ("rpow", lambda a: 2.0**a, None, [normal(4)]),
    ("neg", lambda a: -a, None, [normal(2, 3)]),
    ("matmul", lambda a, b: a @ b, None, [normal(3, 4), normal(4, 2)]),
    ("matmul_batched", lambda a, b: a @ b, None, [normal(2, 1, 3, 4), normal(5, 4, 2)]),
    ("matmul_shared_weight", lambda a, b: a @ b, None, [normal(2, 3, 4), normal(4, 5)]),
    ("matmul_vector_left", lambda a, b: a @ b, None, [normal(4), normal(2, 4, 3)]),
    ("matmul_vector_right", lambda a, b: a @ b, None, [normal(2, 3, 4), normal(4)]),
    ("matmul_dot", lambda a, b: a @ b, None, [normal(4), normal(4)]),
    ("exp", lambda a: a.exp(), None, [normal(2, 3)]),
    ("log", lambda a: a.log(), None, [positive(2, 3)]),
    ("sqrt", lambda a: a.sqrt(), None, [positive(2, 3)]),
    ("tanh", lambda a: a.tanh(), None, [normal(2, 3)]),
    ("sigmoid", lambda a: a.sigmoid(), None, [normal(2, 3) * 5]),
    ("relu", lambda a: a.relu(), None, [away_from_zero(2, 3)]),
    ("gelu", lambda a: a.gelu(), lambda a: F.gelu(a), [normal(3, 4) * 3]),
    ("gelu_tanh", lambda a: a.gelu(approximate="tanh"), lambda a: F.gelu(a, approximate="tanh"), [normal(3, 4) * 3]),
    ("sum", lambda a: a.sum(axis=(0, 2), keepdims=True), None, [normal(2, 3, 4)]),
    ("sum_all", lambda a: a.sum(), None, [normal(2, 3)]),
    ("mean", lambda a: a.mean(axis=-1), None, [normal(2, 3, 4)]),
    ("max", lambda a: a.max(axis=1), lambda a: a.amax(axis=1), [distinct(2, 3, 4)]),
    ("max_all", lambda a: a.max(), lambda a: a.amax(), [distinct(3, 4)]),
    ("max_ties", lambda a: a.max(axis=-1), lambda a: a.amax(axis=-1), [np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])]),
    ("var", lambda a: a.var(axis=0), None, [normal(4, 3)]),
    ("var_population", lambda a: a.var(axis=(1, 2), keepdims=True, correction=0), None, [normal(2, 3, 4)]),
    ("softmax", lambda a: a.softmax(axis=-1), lambda a: a.softmax(dim=-1), [normal(2, 5) * 4]),
    ("softmax_axis0", lambda a: a.softmax(axis=0), lambda a: a.softmax(dim=0), [normal(3, 2)]),
    ("log_softmax", lambda a: a.log_softmax(axis=-1), lambda a: a.log_softmax(dim=-1), [normal(2, 5) * 4]),
    ("logsumexp", lambda a: a.logsumexp(axis=1), lambda a: a.logsumexp(dim=1), [normal(2, 5, 3)]),
    ("reshape", lambda a: a.reshape(3, -1) * 2, None, [normal(2, 3, 2)]),
    ("permute", lambda a: a.permute(2, 0, 1).exp(), None, [normal(2, 3, 4)]),
    ("transpose", lambda a: a.transpose(0, -1).tanh(), None, [normal(2, 3, 4)]),
    ("T", lambda a: a.T @ a, None, [normal(3, 2)]),
    ("slice", lambda a: a[1:, ::2].exp(), None, [normal(3, 5)]),
    ("int_index", lambda a: a[-1, 2] * a[0], None, [normal(3, 4)]),
    ("gather_rows", lambda a: a[ids].tanh(), lambda a: a[torch.from_numpy(ids)].tanh(), [normal(4, 3)]),
    ("gather_pairs", lambda a: a[ids[0], ids[1]].exp(), lambda a: a[torch.from_numpy(ids[0]), torch.from_numpy(ids[1])].exp(),
     [normal(4, 4)]),
    ("concatenate", lambda a, b: tt.concatenate([a, b, a], axis=1), lambda a, b: torch.cat([a, b, a], dim=1),
     [normal(2, 3), normal(2, 1)]),
    ("stack", lambda a, b: tt.stack([a, b], axis=-1), lambda a, b: torch.stack([a, b], dim=-1), [normal(2, 3), normal(2, 3)]),
    ("split", lambda a: a.split([1, 3], axis=1)[1] * a.split(2, axis=1)[0].sum(), lambda a: a.split([1, 3], dim=1)[1]
     * a.split(2, dim=1)[0].sum(), [normal(2, 4)]),
    ("where", lambda a, b: tt.where(cond, a, b), lambda a, b: torch.where(torch.from_numpy(cond), a, b),
     [normal(3, 4), normal(4)]),
    ("masked_fill", lambda a: a.masked_fill(causal, float("-inf")).softmax(axis=-1),
     lambda a: a.masked_fill(torch.from_numpy(causal), float("-inf")).softmax(dim=-1), [normal(2, 4, 4)]),
    # whole expressions: a classifier's loss, a LayerNorm, causal attention, a reused node
    ("cross_entropy", lambda x, w, b: -(x @ w + b).gelu().log_softmax(axis=-1)[np.arange(3), [0, 2, 2]].mean(),
     lambda x, w, b: F.cross_entropy(F.gelu(x @ w + b), torch.tensor([0, 2, 2])), [normal(3, 4), normal(4, 3), normal(3)]),
    ("layer_norm", lambda x, g, b: (x - x.mean(axis=-1, keepdims=True)) / (x.var(axis=-1, keepdims=True, correction=0) + 1e-5).sqrt() * g + b,
     lambda x, g, b: F.layer_norm(x, (5,), g, b, eps=1e-5), [normal(2, 3, 5), normal(5), normal(5)]),
    ("attention", lambda q, k, v: (q @ k.transpose(-2, -1) / 2.0).masked_fill(causal, float("-inf")).softmax(axis=-1) @ v,
     lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.5), [normal(2, 4, 3), normal(2, 4, 3), normal(2, 4, 3)]),
    ("reused_node", lambda x: (x.tanh() * x.tanh().sigmoid() + x.tanh() * x).sum(axis=0), None, [normal(3, 2)]),
]


@pytest.mark.parametrize("name, tt_fn, torch_fn, arrays", CASES, ids=[c[0] for c in CASES])
def test_same_values_and_gradients_as_torch(name, tt_fn, torch_fn, arrays):
    assert_same(tt_fn, torch_fn, arrays)


SPELLED_ALIKE = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
                 "div": lambda a, b: a / (b * b + 0.5), "pow": lambda a, b: (a * a + 0.5) ** b}


@pytest.mark.parametrize("op", SPELLED_ALIKE)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3), seed=st.integers(0, 2**32 - 1))
def test_broadcasting_matches_torch(op, shapes, seed):
    (shape_a, shape_b), _ = shapes
    gen = np.random.default_rng(seed)
    assert_same(SPELLED_ALIKE[op], None, [gen.standard_normal(shape_a), gen.standard_normal(shape_b)])


@st.composite
def reduction_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=2, max_side=4))
    axis = draw(st.none() | st.integers(-len(shape), len(shape) - 1) | hnp.valid_tuple_axes(len(shape), min_size=1))
    return shape, axis, draw(st.booleans()), draw(st.sampled_from(["sum", "mean", "max", "var", "logsumexp"]))


@given(case=reduction_cases(), seed=st.integers(0, 2**32 - 1))
def test_reductions_match_torch(case, seed):
    shape, axis, keepdims, op = case
    x = 0.1 * np.random.default_rng(seed).permutation(math.prod(shape)).reshape(shape)  # no ties for max
    dims = tuple(range(len(shape))) if axis is None else axis
    tt_fn = lambda x: getattr(x, op)(axis=axis, keepdims=keepdims)
    torch_name = {"max": "amax"}.get(op, op)
    torch_fn = lambda x: getattr(x, torch_name)(dim=dims, keepdim=keepdims)
    assert_same(tt_fn, torch_fn, [x])
