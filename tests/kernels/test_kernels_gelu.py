import numpy as np
import pytest
import torch
from compare_twins import DTYPES, assert_directional_derivatives, assert_same, on_both

from tinytransformer.kernels import gelu_backward, gelu_forward, use_backend


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
