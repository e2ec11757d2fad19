"""Flash and BLAS attention (lessons/flash_attention.py, which only lesson 10 and the benchmarks run) and
the masked softmax kernels (tinytransformer/kernels/attention_softmax.py, which the library runs)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from compare_twins import DTYPES, TOLERANCE, assert_directional_derivatives, assert_same, on_both
from hypothesis import given
from hypothesis import strategies as st

from tinytransformer.kernels import masked_softmax, softmax_from_lse, use_backend

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lessons"))  # a lesson's module, as lesson 10 imports it
from flash_attention import (  # noqa: E402
    KEY_TILE,
    blas_attention_backward,
    blas_attention_forward,
    flash_attention_backward,
    flash_attention_forward,
)


def _qkv(rng, b, h, tq, tk, d, dtype):
    q = rng.standard_normal((b, h, tq, d)).astype(dtype)
    k, v = (rng.standard_normal((b, h, tk, d)).astype(dtype) for _ in range(2))
    return q, k, v, rng.standard_normal(q.shape).astype(dtype)


def _padding_mask(b, tk):
    """(B, 1, 1, Tk) key padding, True = real token; batch 0 is left-padded by 3, so under the causal
    mask its first 3 queries see no key at all."""
    mask = np.ones((b, 1, 1, tk), dtype=bool)
    mask[0, ..., :3] = False
    return mask


def _all_four(q, k, v, grad, mask, is_causal):
    """Flash and BLAS attention, forward and backward, on the current backend."""
    out, lse = flash_attention_forward(q, k, v, mask, is_causal)
    flash = (out, lse, *flash_attention_backward(grad, q, k, v, out, lse, mask, is_causal))
    out, probs = blas_attention_forward(q, k, v, mask, is_causal)
    return flash, (out, probs, *blas_attention_backward(grad, q, k, v, probs))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t", [1, 70, 2 * KEY_TILE + 3])
@pytest.mark.parametrize("masked", [False, True])
def test_numba_matches_numpy_causal(rng, dtype, t, masked):
    q, k, v, grad = _qkv(rng, 2, 3, t, t, 5, dtype)
    mask = _padding_mask(2, t) if masked else None
    (flash_ref, blas_ref), (flash_fast, blas_fast) = on_both(_all_four, q, k, v, grad, mask, True)
    assert_same(flash_ref, flash_fast, dtype)
    assert_same(blas_ref, blas_fast, dtype)
    for flash, blas in [(flash_ref, blas_ref), (flash_fast, blas_fast)]:  # the two methods agree
        for a, b in zip(flash[:1] + flash[2:], blas[:1] + blas[2:]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("is_causal", [False, True])
def test_numba_matches_numpy_full_mask_and_unequal_lengths(rng, dtype, is_causal):
    q, k, v, grad = _qkv(rng, 2, 2, 9, 77, 3, dtype)  # Tq != Tk; causal is top-left aligned (j <= i)
    mask = rng.random((2, 2, 9, 77)) < 0.6
    mask[1, 0, 4] = False  # one query with every key masked
    (flash_ref, blas_ref), (flash_fast, blas_fast) = on_both(_all_four, q, k, v, grad, mask, is_causal)
    assert_same(flash_ref, flash_fast, dtype)
    assert_same(blas_ref, blas_fast, dtype)


@given(
    t=st.integers(1, 2 * KEY_TILE + 5), d=st.integers(1, 9), is_causal=st.booleans(),
    density=st.sampled_from([0.0, 0.3, 1.0]), seed=st.integers(0, 2**16),
)
def test_flash_numba_matches_numpy_property(t, d, is_causal, density, seed):
    rng = np.random.default_rng(seed)
    q, k, v, grad = _qkv(rng, 1, 2, t, t, d, np.float64)
    mask = rng.random((1, 2, t, t)) < density if density < 1.0 else None
    ref, fast = on_both(lambda *a: _all_four(*a)[0], q, k, v, grad, mask, is_causal)
    assert_same(ref, fast, np.float64)


@pytest.mark.parametrize("masked", [False, True])
def test_numpy_references_match_torch_sdpa(rng, masked):
    q, k, v, grad = _qkv(rng, 2, 3, 70, 70, 8, np.float64)
    mask = _padding_mask(2, 70) if masked else None
    with use_backend("numpy"):
        flash, blas = _all_four(q, k, v, grad, mask, True)
    qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    if masked:  # torch takes one mask: causal and padding combined; its fully masked rows are NaN
        keep = torch.tensor(mask) & torch.ones(70, 70, dtype=torch.bool).tril()
        out = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, attn_mask=keep)
    else:
        out = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
    out.backward(torch.tensor(grad))
    expected = [np.nan_to_num(a.detach().numpy()) for a in (out, qt.grad, kt.grad, vt.grad)]
    for ours in (flash[:1] + flash[2:], blas[:1] + blas[2:]):
        for a, b in zip(ours, expected):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["flash", "blas"])
def test_numpy_backward_matches_finite_differences(rng, method):
    q, k, v, grad = _qkv(rng, 1, 2, 11, 11, 3, np.float64)
    mask = _padding_mask(1, 11)
    forward = {"flash": flash_attention_forward, "blas": blas_attention_forward}[method]
    with use_backend("numpy"):
        _, _, dq, dk, dv = _all_four(q, k, v, grad, mask, True)[method == "blas"]
        loss = lambda q, k, v: float(np.sum(grad * forward(q, k, v, mask, True)[0]))
        assert_directional_derivatives(lambda a: loss(a, k, v), q, dq)
        assert_directional_derivatives(lambda a: loss(q, a, v), k, dk)
        assert_directional_derivatives(lambda a: loss(q, k, a), v, dv)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fully_masked_queries_give_zeros_not_nan(rng, backend):
    q, k, v, grad = _qkv(rng, 2, 2, 70, 70, 4, np.float32)
    mask = _padding_mask(2, 70)  # batch 0, queries 0..2: nothing visible
    with use_backend(backend):
        flash, blas = _all_four(q, k, v, grad, mask, True)
    for result in (flash, blas):
        assert not any(np.isnan(a).any() for a in result)
        out, _, dq, dk, dv = result
        np.testing.assert_array_equal(out[0, :, :3], 0)
        np.testing.assert_array_equal(dq[0, :, :3], 0)
        np.testing.assert_array_equal(dk[0, :, :3], 0)  # padding keys get no gradient
        np.testing.assert_array_equal(dv[0, :, :3], 0)
        assert np.abs(out[0, :, 3:]).max() > 0 and np.abs(out[1]).max() > 0
    assert np.all(flash[1][0, :, :3] == -np.inf)  # lse of an empty row
    assert np.all(blas[1][0, :, :3] == 0)


def test_bad_arguments_raise():
    q = np.zeros((1, 2, 4, 3))
    with pytest.raises(ValueError, match="flash_attention_forward: q, k, v must be float arrays of shape"):
        flash_attention_forward(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="must share B, H, D"):
        flash_attention_forward(q, np.zeros((1, 2, 4, 5)), np.zeros((1, 2, 4, 5)))
    with pytest.raises(TypeError, match="blas_attention_forward: attn_mask must be boolean"):
        blas_attention_forward(q, q, q, attn_mask=np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 3\) does not broadcast to \(B, H, Tq, Tk\)"):
        flash_attention_forward(q, q, q, attn_mask=np.ones((3, 3), bool))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("is_causal", [False, True])
def test_masked_softmax_lse_and_recompute(rng, dtype, is_causal):
    """masked_softmax's probabilities and lse agree across backends and with a direct softmax;
    softmax_from_lse rebuilds the probabilities from lse; masked rows are 0 with lse = -inf."""
    scores = (rng.standard_normal((2, 3, 7, 9)) * 3).astype(dtype)
    scores[1, 2, 4] = -np.inf  # a row with every score -inf (an additive mask)
    mask = rng.random((2, 1, 7, 9)) < 0.7
    mask[0, 0, 5] = False  # a row with every key masked
    (p_ref, lse_ref), (p_fast, lse_fast) = on_both(masked_softmax, scores, mask, is_causal, 0.5)
    assert_same((p_ref, lse_ref), (p_fast, lse_fast), dtype)
    for name in ("numpy", "numba"):
        with use_backend(name):
            rebuilt = softmax_from_lse(scores.copy(), lse_fast, mask, is_causal, 0.5)
        np.testing.assert_allclose(rebuilt, p_ref, **TOLERANCE[np.dtype(dtype)])
    keep = mask & (np.tri(7, 9, dtype=bool) if is_causal else True)
    s = np.where(keep, scores.astype(np.float64) * 0.5, -np.inf)  # (2, 3, 7, 9)
    dead = np.isneginf(s).all(axis=-1)  # (2, 3, 7)
    assert dead[0, :, 5].all() and dead[1, 2, 4]
    top = np.where(dead, 0, s.max(axis=-1))
    with np.errstate(divide="ignore"):
        expected_lse = top + np.log(np.exp(s - top[..., None]).sum(axis=-1))
    np.testing.assert_allclose(lse_fast, expected_lse, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert not p_fast[dead].any() and np.isfinite(p_fast).all()
