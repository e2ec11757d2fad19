import numpy as np
import pytest
import torch
from compare_twins import DTYPES, assert_directional_derivatives, assert_same, on_both

from tinytransformer.kernels import cross_entropy_backward, cross_entropy_forward, use_backend


def _inputs(rng, n, v, dtype, ignore_index=-100):
    logits = (rng.standard_normal((n, v)) * 5).astype(dtype)
    target = rng.integers(0, v, size=n)
    target[::4] = ignore_index  # some rows are ignored
    return logits, target


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("n, v", [(1, 1), (37, 65), (130, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_numba_matches_numpy(rng, dtype, reduction, label_smoothing, n, v):
    logits, target = _inputs(rng, n, v, dtype)
    target[0] = v - 1  # at least one row counts
    kw = dict(ignore_index=-100, label_smoothing=label_smoothing, reduction=reduction)
    ref, fast = on_both(cross_entropy_forward, logits, target, **kw)
    assert_same(ref, fast, dtype)
    grad = rng.standard_normal(n).astype(dtype) if reduction == "none" else dtype(0.7)
    assert_same(*on_both(cross_entropy_backward, grad, logits, target, ref[1], **kw), dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore_index", [-100, 3])
def test_numpy_reference_matches_torch(rng, reduction, label_smoothing, ignore_index):
    logits, target = _inputs(rng, 23, 7, np.float64, ignore_index)
    logits[1] += 800  # large logits must not overflow
    kw = dict(ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)
    grad = rng.standard_normal(23) if reduction == "none" else np.float64(1.3)
    with use_backend("numpy"):
        loss, lse = cross_entropy_forward(logits, target, **kw)
        dlogits = cross_entropy_backward(grad, logits, target, lse, **kw)
    lt = torch.tensor(logits, requires_grad=True)
    loss_t = torch.nn.functional.cross_entropy(lt, torch.tensor(target), **kw)
    loss_t.backward(torch.tensor(grad))
    np.testing.assert_allclose(loss, loss_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlogits, lt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_numpy_backward_matches_finite_differences(rng):
    logits, target = _inputs(rng, 9, 5, np.float64)
    kw = dict(label_smoothing=0.1, reduction="mean")
    with use_backend("numpy"):
        _, lse = cross_entropy_forward(logits, target, **kw)
        dlogits = cross_entropy_backward(1.0, logits, target, lse, **kw)
        assert_directional_derivatives(lambda a: float(cross_entropy_forward(a, target, **kw)[0]), logits, dlogits)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_row_ignored(dtype):
    logits = np.ones((3, 4), dtype=dtype)
    target = np.full(3, -100)
    for name in ("numpy", "numba"):
        with use_backend(name):
            loss, lse = cross_entropy_forward(logits, target)
            assert np.isnan(loss) and loss.dtype == dtype  # 0 / 0, as torch
            assert cross_entropy_forward(logits, target, reduction="sum")[0] == 0
            np.testing.assert_array_equal(cross_entropy_backward(1.0, logits, target, lse), 0)


def test_out_of_range_target_raises():
    with pytest.raises(IndexError, match="cross_entropy_forward: target 5 is out of range for 5 classes"):
        cross_entropy_forward(np.zeros((2, 5)), np.array([0, 5]))
    with pytest.raises(TypeError, match="cross_entropy_forward: target must be integers"):
        cross_entropy_forward(np.zeros((2, 5)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="cross_entropy_backward: reduction='none' needs grad of shape"):
        cross_entropy_backward(1.0, np.zeros((2, 5)), np.array([0, 1]), np.zeros(2), reduction="none")
