import numpy as np
import pytest
import torch
from compare_twins import DTYPES, assert_same

from tinytransformer.kernels import adamw_update, use_backend

HYPER = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)


def _run(backend, param, grads, dtype):
    """Three AdamW steps from zero moments; returns param, exp_avg, exp_avg_sq."""
    param = param.astype(dtype)
    exp_avg, exp_avg_sq = np.zeros_like(param), np.zeros_like(param)
    with use_backend(backend):
        for step, grad in enumerate(grads, start=1):
            adamw_update(param, grad.astype(dtype), exp_avg, exp_avg_sq, step, **HYPER)
    return param, exp_avg, exp_avg_sq


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (37, 19), (3, 5, 7)])
def test_numba_matches_numpy(rng, dtype, shape):
    param = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) for _ in range(3)]
    assert_same(_run("numpy", param, grads, dtype), _run("numba", param, grads, dtype), dtype)


def test_numpy_reference_matches_torch(rng):
    param = rng.standard_normal((6, 5))
    grads = [rng.standard_normal((6, 5)) for _ in range(3)]
    ours = _run("numpy", param, grads, np.float64)
    p = torch.tensor(param, requires_grad=True)
    opt = torch.optim.AdamW([p], lr=HYPER["lr"], betas=(HYPER["beta1"], HYPER["beta2"]), eps=HYPER["eps"],
                            weight_decay=HYPER["weight_decay"], foreach=False)
    for grad in grads:
        p.grad = torch.tensor(grad)
        opt.step()
    state = opt.state[p]
    for mine, theirs in zip(ours, (p.detach(), state["exp_avg"], state["exp_avg_sq"])):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-12, atol=1e-15)


def test_updates_in_place_and_leaves_grad_alone():
    param, grad = np.ones(4, np.float32), np.full(4, 0.5, np.float32)
    exp_avg, exp_avg_sq = np.zeros(4, np.float32), np.zeros(4, np.float32)
    for name in ("numpy", "numba"):
        with use_backend(name):
            before = param.copy()
            adamw_update(param, grad, exp_avg, exp_avg_sq, 1, **HYPER)
        assert np.all(param < before) and np.all(exp_avg > 0) and np.all(grad == 0.5)


def test_bad_arguments_raise():
    p = np.zeros((2, 3))
    with pytest.raises(TypeError, match="adamw_update: param must be a writeable C-contiguous float array"):
        adamw_update(p.T, p.T, p.T, p.T, 1, **HYPER)
    with pytest.raises(ValueError, match=r"adamw_update: exp_avg is float64 \(3,\) but param is float64 \(2, 3\)"):
        adamw_update(p, p, np.zeros(3), p, 1, **HYPER)
    with pytest.raises(ValueError, match="adamw_update: step counts from 1, got 0"):
        adamw_update(p, p, p.copy(), p.copy(), 0, **HYPER)
