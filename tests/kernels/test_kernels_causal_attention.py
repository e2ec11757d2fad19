"""Causal attention by block rows (tinytransformer/kernels/causal_attention.py): its softmax twins against each
other, and the whole forward and backward against the full (T, T) score matrix, at lengths that are not
multiples of the block."""

import numpy as np
import pytest
from compare_twins import DTYPES, assert_directional_derivatives, assert_same, on_both
from hypothesis import given
from hypothesis import strategies as st

from tinytransformer.kernels import use_backend
from tinytransformer.kernels.attention_softmax import masked_softmax_backward_numpy, masked_softmax_numpy
from tinytransformer.kernels.causal_attention import (
    causal_attention_backward,
    causal_attention_forward,
    causal_block_softmax,
    causal_block_softmax_backward,
    causal_block_softmax_from_lse,
)

LENGTHS = [1, 7, 63, 65, 129, 200]


def _qkv(rng, shape_q, shape_kv, dtype):
    q = rng.standard_normal(shape_q).astype(dtype)
    k, v = (rng.standard_normal(shape_kv).astype(dtype) for _ in range(2))
    return q, k, v


def full_matrix_attention(q, k, v, grad, scale):
    """The reference, in float64: the whole (L, S) score matrix, the causal mask on it, the softmax's backward.
    Returns out, lse, dq, dk, dv."""
    q, k, v, grad = (a.astype(np.float64) for a in (q, k, v, grad))
    keep = np.tri(q.shape[-2], k.shape[-2], dtype=bool)  # (L, S): key j <= query i
    p, lse = masked_softmax_numpy(q @ np.swapaxes(k, -1, -2), keep, False, scale)  # (..., L, S), (..., L)
    ds = masked_softmax_backward_numpy(grad @ np.swapaxes(v, -1, -2), p, scale)  # (..., L, S)
    return p @ v, lse, ds @ k, np.swapaxes(ds, -1, -2) @ q, np.swapaxes(p, -1, -2) @ grad


def blocked(q, k, v, grad, scale, block):
    out, lse = causal_attention_forward(q, k, v, scale, block)
    return (out, lse, *causal_attention_backward(grad, q, k, v, out, lse, scale, block))


def assert_matches_reference(ours, reference, dtype):
    tol = dict(rtol=1e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    for name, a, b in zip(["out", "lse", "dq", "dk", "dv"], ours, reference):
        assert a.dtype == np.dtype(dtype), (name, a.dtype)
        np.testing.assert_allclose(a, b, err_msg=name, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("first_query, rows, keys", [(0, 5, 5), (0, 1, 1), (16, 16, 32), (21, 7, 28), (40, 9, 30)])
def test_block_softmax_twins(rng, dtype, first_query, rows, keys):
    """Forward (lse), recompute and backward of one block row, NumPy against Numba; the last case is a
    block row past the end of a shorter key sequence (every key visible)."""
    scores = (rng.standard_normal((2, 3, rows, keys)) * 3).astype(dtype)
    p_ref, p_fast = on_both(causal_block_softmax, scores, first_query)
    assert_same(p_ref, p_fast, dtype)
    probs, lse = p_ref
    keep = np.arange(keys)[None, :] <= first_query + np.arange(rows)[:, None]  # (rows, keys)
    np.testing.assert_array_equal(probs[..., ~keep], 0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1, rtol=1e-5 if dtype == np.float32 else 1e-12)
    rebuilt = on_both(causal_block_softmax_from_lse, scores, lse, first_query)
    assert_same(*rebuilt, dtype)
    np.testing.assert_allclose(rebuilt[1], probs, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
    grad_probs = rng.standard_normal(scores.shape).astype(dtype)
    row_dot = rng.standard_normal(scores.shape[:-1]).astype(dtype)
    ds = on_both(causal_block_softmax_backward, grad_probs, probs, row_dot)
    assert_same(*ds, dtype)
    np.testing.assert_array_equal(ds[1][..., ~keep], 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t", LENGTHS)
@pytest.mark.parametrize("block", [None, 16])  # None: the library's BLOCK
def test_blocked_matches_full_matrix(rng, dtype, t, block):
    q, k, v = _qkv(rng, (1, 2, t, 5), (1, 2, t, 5), dtype)
    grad = rng.standard_normal(q.shape).astype(dtype)
    reference = full_matrix_attention(q, k, v, grad, 0.4)
    ours_numpy, ours_numba = on_both(blocked, q, k, v, grad, 0.4, block)
    assert_same(ours_numpy, ours_numba, dtype)
    assert_matches_reference(ours_numpy, reference, dtype)
    assert_matches_reference(ours_numba, reference, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape_q, shape_kv", [
    ((2, 3, 20, 4), (2, 3, 33, 4)),  # fewer queries than keys: the keys past the last query get no gradient
    ((2, 3, 33, 4), (2, 3, 20, 4)),  # more queries than keys: the last ones see every key
    ((2, 3, 21, 4), (1, 3, 21, 4)),  # keys and values broadcast over the batch
    ((21, 4), (21, 4)),  # no batch axes
])
def test_blocked_unequal_lengths_and_broadcasting(rng, dtype, shape_q, shape_kv):
    q, k, v = _qkv(rng, shape_q, shape_kv, dtype)
    grad = rng.standard_normal(np.broadcast_shapes(shape_q[:-2], shape_kv[:-2]) + shape_q[-2:]).astype(dtype)
    reference = full_matrix_attention(q, k, v, grad, 0.5)
    ours_numpy, ours_numba = on_both(blocked, q, k, v, grad, 0.5, 8)
    assert_same(ours_numpy, ours_numba, dtype)
    assert_matches_reference(ours_numba, reference, dtype)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_blocked_backward_matches_finite_differences(rng, backend):
    q, k, v = _qkv(rng, (1, 2, 23, 3), (1, 2, 23, 3), np.float64)
    grad = rng.standard_normal(q.shape)
    with use_backend(backend):
        _, _, dq, dk, dv = blocked(q, k, v, grad, 0.6, 5)
        loss = lambda q, k, v: float(np.sum(grad * causal_attention_forward(q, k, v, 0.6, 5)[0]))
        assert_directional_derivatives(lambda a: loss(a, k, v), q, dq)
        assert_directional_derivatives(lambda a: loss(q, a, v), k, dk)
        assert_directional_derivatives(lambda a: loss(q, k, a), v, dv)


@given(t=st.integers(1, 40), block=st.integers(1, 17), d=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_blocked_property(t, block, d, seed):
    """Any length, any block: the blocked result is the full matrix's, on both backends."""
    rng = np.random.default_rng(seed)
    q, k, v = _qkv(rng, (1, 2, t, d), (1, 2, t, d), np.float64)
    grad = rng.standard_normal(q.shape)
    ours_numpy, ours_numba = on_both(blocked, q, k, v, grad, 0.5, block)
    assert_same(ours_numpy, ours_numba, np.float64)
    assert_matches_reference(ours_numba, full_matrix_attention(q, k, v, grad, 0.5), np.float64)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="causal_block_softmax: scores must be a float array"):
        causal_block_softmax(np.zeros(4), 0)
    with pytest.raises(ValueError, match="first_query must be >= 0"):
        causal_block_softmax(np.zeros((2, 2)), -1)
    with pytest.raises(ValueError, match=r"lse has shape \(3,\), scores \(2, 2\) need \(2,\)"):
        causal_block_softmax_from_lse(np.zeros((2, 2)), np.zeros(3), 0)
    with pytest.raises(ValueError, match="causal_block_softmax_backward: grad_probs"):
        causal_block_softmax_backward(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(3))
