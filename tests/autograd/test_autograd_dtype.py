"""dtype discipline: float32 in -> float32 out (values and gradients), float64 stays float64.

Python scalars, NumPy scalars, boolean masks and integer arrays or tensors must never upcast.
"""

import numpy as np
import pytest

import tinytransformer as tt

mask = np.array([[True, False, True, False]])
causal = tt.Tensor(np.triu(np.ones((4, 4), dtype=bool), k=1))

# each takes two (3, 4) inputs with values in [0.5, 2]
OPS = {
    "add_scalar": lambda a, b: a + 1.5,
    "radd_int": lambda a, b: 2 + a,
    "sub": lambda a, b: a - b,
    "rsub_scalar": lambda a, b: 1.0 - a,
    "mul_numpy_scalar": lambda a, b: a * np.float64(0.5),
    "mul_bool_mask": lambda a, b: a * mask,
    "mul_bool_tensor": lambda a, b: a * tt.Tensor(mask),
    "mul_int_array": lambda a, b: a * np.arange(4),
    "mul_int_tensor": lambda a, b: tt.Tensor(np.arange(4)) * a,
    "div": lambda a, b: a / b,
    "rdiv_scalar": lambda a, b: 1 / a,
    "pow_scalar": lambda a, b: a**2,
    "pow_float_scalar": lambda a, b: a**0.5,
    "rpow": lambda a, b: 2.0**a,
    "pow": lambda a, b: a**b,
    "neg": lambda a, b: -a,
    "matmul": lambda a, b: a @ b.T,
    "exp": lambda a, b: a.exp(),
    "log": lambda a, b: a.log(),
    "sqrt": lambda a, b: a.sqrt(),
    "tanh": lambda a, b: a.tanh(),
    "sigmoid": lambda a, b: a.sigmoid(),
    "relu": lambda a, b: (a - 1).relu(),
    "gelu": lambda a, b: a.gelu(),
    "gelu_tanh": lambda a, b: a.gelu(approximate="tanh"),
    "sum": lambda a, b: a.sum(axis=0),
    "mean": lambda a, b: a.mean(axis=(0, 1), keepdims=True),
    "max": lambda a, b: a.max(axis=-1),
    "var": lambda a, b: a.var(axis=1),
    "softmax": lambda a, b: a.softmax(axis=-1),
    "log_softmax": lambda a, b: a.log_softmax(axis=0),
    "logsumexp": lambda a, b: a.logsumexp(axis=1),
    "reshape": lambda a, b: a.reshape(2, 6),
    "permute": lambda a, b: a.permute(1, 0),
    "transpose": lambda a, b: a.transpose(0, 1),
    "T": lambda a, b: a.T,
    "slice": lambda a, b: a[1:, ::2],
    "gather": lambda a, b: a[np.array([0, 0, 2])],
    "gather_by_tensor": lambda a, b: a[tt.Tensor(np.array([2, 1]))],
    "boolean_index": lambda a, b: a[a > 1],
    "concatenate": lambda a, b: tt.concatenate([a, b], axis=1),
    "stack": lambda a, b: tt.stack([a, b]),
    "split": lambda a, b: a.split(2, axis=1)[1],
    "where_scalar": lambda a, b: tt.where(mask, a, 0.0),
    "where_scalar_first": lambda a, b: tt.where(mask, -1, b),
    "where": lambda a, b: tt.where(a > 1, a, b),
    "masked_fill": lambda a, b: a.masked_fill(mask, float("-inf")),
    "masked_fill_tensor_mask": lambda a, b: (a @ b.T).reshape(3, 3)[:, :3].masked_fill(causal[:3, :3], 0.0),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPS)
def test_ops_keep_the_input_dtype(op, dtype, rng):
    a = tt.Tensor(rng.uniform(0.5, 2.0, (3, 4)).astype(dtype), requires_grad=True)
    b = tt.Tensor(rng.uniform(0.5, 2.0, (3, 4)).astype(dtype), requires_grad=True)
    out = OPS[op](a, b)
    assert out.dtype == dtype, f"{op}: {dtype.__name__} in, {out.dtype} out"
    out.backward(np.ones(out.shape, dtype=dtype))
    for x in (a, b):
        assert x.grad is None or x.grad.dtype == dtype


def test_python_numbers_make_float32_and_arrays_keep_their_dtype():
    assert tt.Tensor(1.0).dtype == np.float32
    assert tt.Tensor([[1.0, 2.0]]).dtype == np.float32
    assert tt.Tensor(np.zeros(2)).dtype == np.float64
    assert tt.Tensor(np.zeros(2), dtype=np.float32).dtype == np.float32
    assert tt.zeros(2, 3).dtype == np.float32 and tt.ones((2, 3), dtype=np.float64).dtype == np.float64
    assert tt.DEFAULT_DTYPE == np.float32


def test_casts_and_their_gradients():
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64 and y.float().dtype == np.float32
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_mixing_float32_and_float64_tensors_gives_float64():
    a = tt.tensor([1.0], requires_grad=True)
    b = tt.Tensor(np.array([2.0]), requires_grad=True)
    out = a * b
    assert out.dtype == np.float64
    out.backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_gradients_of_float32_leaves_stay_float32_when_broadcast():
    w = tt.tensor(np.ones((1, 4), dtype=np.float32), requires_grad=True)
    x = tt.tensor(np.ones((5, 3, 4), dtype=np.float32))
    (x * w + 1).sum().backward()
    assert w.grad.dtype == np.float32 and w.grad.shape == (1, 4)
    np.testing.assert_array_equal(w.grad, np.full((1, 4), 15.0))
