"""Losses against PyTorch, against central differences, and fused against composed.

cross_entropy is checked over every combination of input layout ((N, C), (C,), (N, C, d1, d2)),
reduction, class weights, label smoothing and ignored targets: value and gradient against
torch.nn.functional.cross_entropy (float64 to rtol 1e-10, float32 to 1e-5), fused against
composed, and tt.gradcheck on both. BCE-with-logits and MSE are checked the same way, with the
gradient of the target too (PyTorch differentiates it as well).
"""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_F

import tinytransformer as tt
import tinytransformer.nn.functional as F
from tinytransformer import nn

TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}
SHAPES = {"rows": ((5, 4), (5,)), "single": ((4,), ()), "spatial": ((3, 4, 2, 2), (3, 2, 2))}
CASES = list(itertools.product(SHAPES, ["mean", "sum", "none"], [False, True], [0.0, 0.2], [False, True]))
CASE_IDS = [f"{s}-{r}-{'w' if w else 'nw'}-ls{ls}-{'ign' if i else 'all'}" for s, r, w, ls, i in CASES]


def ce_inputs(shape_name, weighted, ignore, dtype, seed=0, scale=2.0):
    """Logits, integer targets (some equal to ignore_index=-1 when ``ignore``) and class weights."""
    rng = np.random.default_rng(seed)
    x_shape, t_shape = SHAPES[shape_name]
    logits = (scale * rng.standard_normal(x_shape)).astype(dtype)
    target = rng.integers(0, 4, t_shape)
    if ignore and target.ndim:
        target.reshape(-1)[::3] = -1
    weight = rng.uniform(0.5, 2.0, 4).astype(dtype) if weighted else None
    return logits, target, weight


def torch_ce(logits, target, weight, **kwargs):
    x = torch.from_numpy(logits.copy()).requires_grad_()
    w = None if weight is None else torch.from_numpy(weight)
    return x, torch_F.cross_entropy(x, torch.from_numpy(target), weight=w, ignore_index=-1, **kwargs)


def backward_both(loss, their_loss, rng):
    """Backward through both losses with the same upstream gradient (random for reduction='none')."""
    g = rng.standard_normal(loss.shape).astype(loss.dtype)
    loss.backward(g)
    their_loss.backward(torch.from_numpy(g))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape_name, reduction, weighted, smoothing, ignore", CASES, ids=CASE_IDS)
def test_cross_entropy_matches_torch_and_composed(shape_name, reduction, weighted, smoothing, ignore, dtype):
    logits, target, weight = ce_inputs(shape_name, weighted, ignore, dtype)
    kwargs = dict(reduction=reduction, label_smoothing=smoothing)
    their_x, their_loss = torch_ce(logits, target, weight, **kwargs)
    g = np.random.default_rng(1).standard_normal(their_loss.shape).astype(dtype)
    their_loss.backward(torch.from_numpy(g))
    for fn in (F.cross_entropy, F.cross_entropy_composed):
        x = tt.Tensor(logits.copy(), requires_grad=True)
        loss = fn(x, tt.Tensor(target), weight, ignore_index=-1, **kwargs)
        assert loss.dtype == dtype and loss.shape == tuple(their_loss.shape)
        loss.backward(g)
        assert x.grad.dtype == dtype
        np.testing.assert_allclose(loss.data, their_loss.detach().numpy(), err_msg=fn.__name__, **TOLERANCE[dtype])
        np.testing.assert_allclose(x.grad, their_x.grad.numpy(), err_msg=fn.__name__, **TOLERANCE[dtype])


@pytest.mark.parametrize("fn", [F.cross_entropy, F.cross_entropy_composed])
@pytest.mark.parametrize("shape_name, reduction, weighted, smoothing, ignore", CASES[::3], ids=CASE_IDS[::3])
def test_cross_entropy_gradcheck(fn, shape_name, reduction, weighted, smoothing, ignore):
    logits, target, weight = ce_inputs(shape_name, weighted, ignore, np.float64, seed=2)
    x = tt.Tensor(logits, requires_grad=True)
    kwargs = dict(weight=weight, ignore_index=-1, reduction=reduction, label_smoothing=smoothing)
    assert tt.gradcheck(lambda x: fn(x, target, **kwargs), [x])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fn", [F.cross_entropy, F.cross_entropy_composed])
def test_cross_entropy_is_stable_for_huge_logits(fn, dtype):
    logits, target, weight = ce_inputs("rows", True, False, dtype, seed=3, scale=1e4)
    x = tt.Tensor(logits.copy(), requires_grad=True)
    loss = fn(x, target, weight, label_smoothing=0.1)
    loss.backward()
    their_x, their_loss = torch_ce(logits, target, weight, label_smoothing=0.1)
    their_loss.backward()
    assert np.isfinite(loss.data) and np.isfinite(x.grad).all()
    np.testing.assert_allclose(loss.data, their_loss.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.grad, their_x.grad.numpy(), **TOLERANCE[dtype])


def test_cross_entropy_with_every_target_ignored_is_nan_with_zero_gradient_like_torch():
    x = tt.Tensor(np.ones((3, 4)), requires_grad=True)
    target = np.full(3, -100)
    loss = F.cross_entropy(x, target, label_smoothing=0.1)
    loss.backward()
    assert np.isnan(loss.item()) and np.isnan(torch_F.cross_entropy(torch.ones(3, 4), torch.from_numpy(target)).item())
    np.testing.assert_array_equal(x.grad, 0)
    assert F.cross_entropy(x, target, reduction="sum").item() == 0


def test_cross_entropy_loss_module_and_its_state_dict():
    logits, target, weight = ce_inputs("rows", True, True, np.float32, seed=4)
    module = nn.CrossEntropyLoss(weight=weight, ignore_index=-1, label_smoothing=0.1)
    theirs = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(weight), ignore_index=-1, label_smoothing=0.1)
    assert list(module.state_dict()) == list(theirs.state_dict()) == ["weight"]
    expected = theirs(torch.from_numpy(logits), torch.from_numpy(target)).item()
    np.testing.assert_allclose(module(tt.Tensor(logits), target).item(), expected, rtol=1e-6)
    assert list(nn.CrossEntropyLoss().state_dict()) == []


@pytest.mark.parametrize("fn", [F.cross_entropy, F.cross_entropy_composed])
def test_cross_entropy_bad_arguments(fn):
    name = fn.__name__
    x = tt.Tensor(np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(IndexError, match=rf"{name}: target values \[-2, 4, 7\] are out of range for C=4 classes"):
        fn(x, np.array([4, -2, 7]))
    with pytest.raises(ValueError, match=rf"{name}: input of shape \(3, 4\) needs a target of shape \(3,\), got \(4,\)"):
        fn(x, np.array([0, 1, 2, 3]))
    with pytest.raises(TypeError, match=rf"{name}: target must hold integer class indices, got dtype float64"):
        fn(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=rf"{name}: weight must have shape \(4,\), one per class, got \(3,\)"):
        fn(x, np.array([0, 1, 2]), weight=np.ones(3))
    with pytest.raises(ValueError, match=rf"{name}: reduction must be one of"):
        fn(x, np.array([0, 1, 2]), reduction="average")
    with pytest.raises(ValueError, match=rf"{name}: label_smoothing must be in \[0, 1\], got 1.5"):
        fn(x, np.array([0, 1, 2]), label_smoothing=1.5)
    assert fn(x, np.array([0, -100, 2])).item() == pytest.approx(np.log(4))  # ignore_index is not out of range


# ----------------------------------------------------------- BCE with logits
BCE_CASES = list(itertools.product(["mean", "sum", "none"], [None, "weight"], [None, "pos_weight"]))


def bce_inputs(dtype, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    logits = (scale * rng.standard_normal((4, 3))).astype(dtype)
    target = rng.uniform(0, 1, (4, 3)).astype(dtype)  # soft targets: the target's gradient is exercised too
    weight = rng.uniform(0.5, 2, (4, 1)).astype(dtype)  # broadcast over the classes
    pos_weight = rng.uniform(0.5, 3, 3).astype(dtype)  # one per class
    return logits, target, weight, pos_weight


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction, weight_name, pos_weight_name", BCE_CASES)
def test_bce_with_logits_matches_torch(reduction, weight_name, pos_weight_name, dtype):
    logits, target, weight, pos_weight = bce_inputs(dtype)
    weight, pos_weight = (weight if weight_name else None), (pos_weight if pos_weight_name else None)
    x, t = tt.Tensor(logits.copy(), requires_grad=True), tt.Tensor(target.copy(), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, t, weight, reduction, pos_weight)
    tx, tt_ = (torch.from_numpy(a.copy()).requires_grad_() for a in (logits, target))
    extras = {k: None if v is None else torch.from_numpy(v) for k, v in (("weight", weight), ("pos_weight", pos_weight))}
    their_loss = torch_F.binary_cross_entropy_with_logits(tx, tt_, reduction=reduction, **extras)
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss.data, their_loss.detach().numpy(), **TOLERANCE[dtype])
    backward_both(loss, their_loss, np.random.default_rng(1))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOLERANCE[dtype])
    np.testing.assert_allclose(t.grad, tt_.grad.numpy(), **TOLERANCE[dtype])


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_bce_with_logits_gradcheck(reduction):
    logits, target, weight, pos_weight = bce_inputs(np.float64, seed=2)
    x, t = tt.Tensor(logits, requires_grad=True), tt.Tensor(target, requires_grad=True)
    fn = lambda x, t: F.binary_cross_entropy_with_logits(x, t, weight, reduction, pos_weight)
    assert tt.gradcheck(fn, [x, t])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_with_logits_is_stable_for_huge_logits(dtype):
    logits, target, weight, pos_weight = bce_inputs(dtype, seed=3, scale=1e4)
    x = tt.Tensor(logits.copy(), requires_grad=True)
    loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight)(x, target)
    loss.backward()
    tx = torch.from_numpy(logits.copy()).requires_grad_()
    their_loss = torch.nn.BCEWithLogitsLoss(pos_weight=torch.from_numpy(pos_weight))(tx, torch.from_numpy(target))
    their_loss.backward()
    assert np.isfinite(loss.data) and np.isfinite(x.grad).all()
    np.testing.assert_allclose(loss.data, their_loss.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOLERANCE[dtype])


def test_bce_with_logits_module_state_dict_and_bad_shapes():
    weight, pos_weight = np.ones(3, dtype=np.float32), np.full(3, 2.0, dtype=np.float32)
    ours = nn.BCEWithLogitsLoss(weight=weight, pos_weight=pos_weight)
    theirs = torch.nn.BCEWithLogitsLoss(weight=torch.from_numpy(weight), pos_weight=torch.from_numpy(pos_weight))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = tt.Tensor(np.zeros((2, 3), dtype=np.float32))
    name = "binary_cross_entropy_with_logits"
    with pytest.raises(ValueError, match=rf"{name}: target shape \(3, 2\) differs from input shape \(2, 3\)"):
        F.binary_cross_entropy_with_logits(x, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=rf"{name}: pos_weight of shape \(2,\) does not broadcast to input shape \(2, 3\)"):
        F.binary_cross_entropy_with_logits(x, np.zeros((2, 3)), pos_weight=np.ones(2))


# ------------------------------------------------------------------------ MSE
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(reduction, dtype):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 3, 4)).astype(dtype), rng.standard_normal((2, 3, 4)).astype(dtype)
    x, t = tt.Tensor(a.copy(), requires_grad=True), tt.Tensor(b.copy(), requires_grad=True)
    loss = nn.MSELoss(reduction)(x, t)
    tx, tt_ = torch.from_numpy(a.copy()).requires_grad_(), torch.from_numpy(b.copy()).requires_grad_()
    their_loss = torch.nn.MSELoss(reduction=reduction)(tx, tt_)
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss.data, their_loss.detach().numpy(), **TOLERANCE[dtype])
    backward_both(loss, their_loss, rng)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOLERANCE[dtype])
    np.testing.assert_allclose(t.grad, tt_.grad.numpy(), **TOLERANCE[dtype])


def test_mse_loss_gradcheck_dtype_and_bad_shapes():
    rng = np.random.default_rng(6)
    x, t = tt.Tensor(rng.standard_normal((3, 4)), requires_grad=True), tt.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert tt.gradcheck(lambda x, t: F.mse_loss(x, t), [x, t])
    x32 = tt.Tensor(np.zeros(3, dtype=np.float32), requires_grad=True)
    assert F.mse_loss(x32, np.ones(3)).dtype == np.float32  # a float64 array target does not upcast
    with pytest.raises(ValueError, match=r"mse_loss: target shape \(3, 1\) differs from input shape \(3,\)"):
        F.mse_loss(x32, np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"MSELoss: reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"):
        nn.MSELoss("avg")
