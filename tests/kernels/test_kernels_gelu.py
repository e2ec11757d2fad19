import numpy as np
import pytest
import torch
from compare_twins import DTYPES, assert_directional_derivatives, assert_same, on_both

from tinytransformer.kernels import bias_gelu_backward, bias_gelu_forward, gelu, gelu_backward, gelu_forward, use_backend


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(1,), (3, 5, 7), (131, 17)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_numba_matches_numpy(rng, dtype, approximate, shape):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    assert_same(*on_both(gelu_forward, x, approximate), dtype)
    assert_same(*on_both(gelu_backward, grad, x, approximate), dtype)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_numpy_reference_matches_torch(rng, approximate):
    x = np.concatenate([rng.standard_normal(200) * 3, [-40.0, -6.0, 0.0, 6.0, 40.0]])
    grad = rng.standard_normal(x.shape)
    with use_backend("numpy"):
        y = gelu_forward(x, approximate)
        dx = gelu_backward(grad, x, approximate)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt, approximate=approximate)
    yt.backward(torch.tensor(grad))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_numpy_backward_matches_finite_differences(rng, approximate):
    x = rng.standard_normal((4, 6)) * 2
    grad = rng.standard_normal(x.shape)
    with use_backend("numpy"):
        dx = gelu_backward(grad, x, approximate)
        assert_directional_derivatives(lambda a: np.sum(grad * gelu_forward(a, approximate)), x, dx)


@pytest.mark.parametrize("dtype", DTYPES)
def test_float32_scalar_constants_do_not_upcast(dtype):
    x = np.linspace(-3, 3, 11, dtype=dtype)
    for name in ("numpy", "numba"):
        with use_backend(name):
            assert gelu_forward(x).dtype == dtype and gelu_backward(x, x, "tanh").dtype == dtype


def test_bad_approximate_raises():
    with pytest.raises(ValueError, match="gelu_forward: approximate must be 'none' or 'tanh', got 'erf'"):
        gelu_forward(np.zeros(3), "erf")
    with pytest.raises(ValueError, match=r"gelu_backward: grad has shape \(2,\) but x has \(3,\)"):
        gelu_backward(np.zeros(2), np.zeros(3))


# ---------------------------------------------------------------- bias + GELU, fused
# (N, H): one row; fewer rows than a db block; rows that do not fill the last block (DB_ROWS = 64)
BIAS_SHAPES = [(1, 5), (3, 7), (131, 17)]


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", BIAS_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_gelu_numba_matches_numpy(rng, dtype, approximate, shape):
    a = (rng.standard_normal(shape) * 4).astype(dtype)
    bias = rng.standard_normal(shape[1]).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    assert_same(*on_both(bias_gelu_forward, a, bias, approximate), dtype)
    assert_same(*on_both(bias_gelu_backward, grad, a, bias, approximate), dtype)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_gelu_is_the_composition(rng, dtype, approximate, backend, monkeypatch):
    """The fused op gives what gelu of (a + bias) gives, dbias the row sum of dh; and its readable twin's numbers.

    Equal bit for bit on NumPy (the same operations); the Numba loops may contract a multiply-add
    differently, so there within a few units of rounding. BLOCK is made small so that the NumPy
    backend's row blocks are exercised."""
    monkeypatch.setattr(gelu, "BLOCK", 40)
    a = (rng.standard_normal((70, 9)) * 3).astype(dtype)
    bias = rng.standard_normal(9).astype(dtype)
    grad = rng.standard_normal(a.shape).astype(dtype)
    same = np.testing.assert_array_equal if backend == "numpy" else (
        lambda x, y: np.testing.assert_allclose(x, y, rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).eps))
    with use_backend(backend):
        y = bias_gelu_forward(a, bias, approximate)
        dh, db = bias_gelu_backward(grad, a, bias, approximate)
        h = a + bias
        same(y, gelu_forward(h, approximate))
        same(dh, gelu_backward(grad, h, approximate))
    assert y.dtype == dh.dtype == db.dtype == dtype
    np.testing.assert_allclose(db, dh.astype(np.float64).sum(axis=0), rtol=1e-5 if dtype == np.float32 else 1e-12)
    twin_dh, twin_db = gelu.bias_gelu_backward_numpy(grad, a, bias, approximate)  # the readable twin
    assert_same((gelu.bias_gelu_forward_numpy(a, bias, approximate), twin_dh, twin_db), (y, dh, db), dtype)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_bias_gelu_backward_matches_finite_differences(rng, approximate, backend):
    """float64, central differences along random directions, |analytic - numeric| <= 1e-8 + 1e-6 |numeric|."""
    a, bias = rng.standard_normal((5, 6)) * 2, rng.standard_normal(6)
    grad = rng.standard_normal(a.shape)
    with use_backend(backend):
        da, dbias = bias_gelu_backward(grad, a, bias, approximate)
        assert_directional_derivatives(lambda t: np.sum(grad * bias_gelu_forward(t, bias, approximate)), a, da)
        assert_directional_derivatives(lambda t: np.sum(grad * bias_gelu_forward(a, t, approximate)), bias, dbias)


def test_bias_gelu_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"bias_gelu_forward: bias has shape \(4,\) but a has \(2, 3\); it must be \(3,\)"):
        bias_gelu_forward(np.zeros((2, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=r"bias_gelu_forward: a must be a matrix \(N, H\), got shape \(3,\)"):
        bias_gelu_forward(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"bias_gelu_backward: grad has shape \(2, 4\) but a has \(2, 3\)"):
        bias_gelu_backward(np.zeros((2, 4)), np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="bias_gelu_backward: approximate must be 'none' or 'tanh', got 'erf'"):
        bias_gelu_backward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(3), "erf")
