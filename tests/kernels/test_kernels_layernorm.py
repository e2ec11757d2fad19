import numpy as np
import pytest
import torch
from compare_twins import DTYPES, assert_directional_derivatives, assert_same, on_both

from tinytransformer.kernels import layer_norm_backward, layer_norm_forward, use_backend


def _inputs(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    weight = rng.standard_normal(shape[-1]).astype(dtype)
    bias = rng.standard_normal(shape[-1]).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    return x, weight, bias, grad


@pytest.mark.parametrize("shape", [(1, 1), (37, 19), (3, 5, 129), (70, 64)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_numba_matches_numpy(rng, dtype, shape):
    x, weight, bias, grad = _inputs(rng, shape, dtype)
    ref, fast = on_both(layer_norm_forward, x, weight, bias, 1e-5)
    assert_same(ref, fast, dtype)
    y, mean, rstd = ref
    assert y.shape == shape and mean.shape == rstd.shape == shape[:-1]
    ref, fast = on_both(layer_norm_backward, grad, x, weight, mean, rstd)
    assert_same(ref, fast, dtype)


def test_numpy_reference_matches_torch(rng):
    x, weight, bias, grad = _inputs(rng, (6, 7, 33), np.float64)
    with use_backend("numpy"):
        y, mean, rstd = layer_norm_forward(x, weight, bias, eps=1e-5)
        dx, dweight, dbias = layer_norm_backward(grad, x, weight, mean, rstd)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    yt = torch.nn.functional.layer_norm(xt, (33,), wt, bt, eps=1e-5)
    yt.backward(torch.tensor(grad))
    for ours, theirs in [(y, yt), (dx, xt.grad), (dweight, wt.grad), (dbias, bt.grad)]:
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean, x.mean(axis=-1), rtol=1e-12)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(x.var(axis=-1) + 1e-5), rtol=1e-12)


def test_numpy_backward_matches_finite_differences(rng):
    x, weight, bias, grad = _inputs(rng, (5, 11), np.float64)
    with use_backend("numpy"):
        _, mean, rstd = layer_norm_forward(x, weight, bias)
        dx, dweight, dbias = layer_norm_backward(grad, x, weight, mean, rstd)
        assert_directional_derivatives(lambda a: np.sum(grad * layer_norm_forward(a, weight, bias)[0]), x, dx)
        assert_directional_derivatives(lambda w: np.sum(grad * layer_norm_forward(x, w, bias)[0]), weight, dweight)
        assert_directional_derivatives(lambda b: np.sum(grad * layer_norm_forward(x, weight, b)[0]), bias, dbias)


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_rows_and_missing_affine(rng, dtype):
    x = np.full((4, 9), 2.5, dtype=dtype)  # zero variance: y = bias, dx finite
    ref, fast = on_both(layer_norm_forward, x, None, None)
    assert_same(ref, fast, dtype)
    np.testing.assert_array_equal(ref[0], 0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"layer_norm_forward: weight has shape \(4,\) but x has C=5"):
        layer_norm_forward(np.zeros((2, 5)), np.ones(4), np.zeros(5))
    with pytest.raises(TypeError, match="layer_norm_forward: x must be a float array"):
        layer_norm_forward(np.zeros((2, 5), dtype=int))
