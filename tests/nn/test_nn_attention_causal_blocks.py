"""scaled_dot_product_attention(is_causal=True) on its block-row path (kernels/causal_attention.py), which skips
the masked half: held to PyTorch, to the composed full-matrix reference and to central differences, on both
backends, at lengths that are not multiples of the block."""

import numpy as np
import pytest
import torch

import tinytransformer as tt
import tinytransformer.nn.functional as F
from tinytransformer.kernels import causal_attention, use_backend

TOL = {np.float64: 1e-10, np.float32: 1e-5}


@pytest.fixture(params=["numpy", "numba"])
def backend(request):
    with use_backend(request.param):
        yield request.param


@pytest.fixture
def block_rows_taken(monkeypatch):
    """A list that records each call of the block-row forward."""
    calls, forward = [], causal_attention.causal_attention_forward

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return forward(*args, **kwargs)
    monkeypatch.setattr(causal_attention, "causal_attention_forward", spy)
    return calls


def assert_close(ours, theirs, dtype, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    tol = TOL[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max()), err_msg=what)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("t", [1, 7, 63, 65, 129, 200])
@pytest.mark.parametrize("block", [None, 4])  # None: the library's BLOCK (64), so T <= 64 takes the full path
def test_causal_attention_matches_torch_and_composed(backend, dtype, t, block, rng, monkeypatch, block_rows_taken):
    if block is not None:
        monkeypatch.setattr(causal_attention, "BLOCK", block)
    data = [rng.standard_normal((2, 3, t, 8)).astype(dtype) for _ in range(3)]
    grad = rng.standard_normal((2, 3, t, 8)).astype(dtype)
    results = []
    for impl in (F.scaled_dot_product_attention, F.scaled_dot_product_attention_composed):
        q, k, v = (tt.Tensor(a.copy(), requires_grad=True) for a in data)
        out = impl(q, k, v, is_causal=True)
        out.backward(grad)
        assert out.dtype == q.grad.dtype == dtype
        results.append([out.data, q.grad, k.grad, v.grad])
    assert len(block_rows_taken) == int(t > causal_attention.BLOCK)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in data)
    expected = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    expected.backward(torch.tensor(grad))
    for name, ours, composed, theirs in zip(["out", "dq", "dk", "dv"], *results, [expected, tq.grad, tk.grad, tv.grad]):
        assert_close(ours, theirs, dtype, f"{name} against torch")
        assert_close(ours, composed, dtype, f"{name} against the composed reference")


@pytest.mark.parametrize("t, block", [(9, 4), (65, None)])
def test_causal_attention_block_rows_gradcheck(backend, t, block, rng, monkeypatch, block_rows_taken):
    if block is not None:
        monkeypatch.setattr(causal_attention, "BLOCK", block)
    q, k, v = (tt.Tensor(rng.standard_normal((1, 2, t, 3)), requires_grad=True) for _ in range(3))
    assert tt.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [q, k, v])
    assert block_rows_taken


def test_causal_attention_block_rows_cases(rng, block_rows_taken):
    """Block rows for causal attention past one block; not with a mask, dropout, or one block's worth of queries."""
    q = tt.Tensor(rng.standard_normal((1, 2, 65, 4)))
    F.scaled_dot_product_attention(q, q, q, is_causal=True)
    assert block_rows_taken == [(1, 2, 65, 4)]
    F.scaled_dot_product_attention(q[:, :, :64], q[:, :, :64], q[:, :, :64], is_causal=True)
    F.scaled_dot_product_attention(q, q, q, is_causal=True, dropout_p=0.1)
    F.scaled_dot_product_attention(q, q, q, attn_mask=np.tri(65, dtype=bool))
    assert len(block_rows_taken) == 1


def test_causal_self_attention_on_block_rows_matches_full_path(rng, monkeypatch, block_rows_taken):
    """The layer GPT uses: the same output and gradients whether its attention takes block rows or not."""
    x = rng.standard_normal((2, 11, 8))
    results = []
    for block in (4, 64):
        monkeypatch.setattr(causal_attention, "BLOCK", block)
        tt.manual_seed(0)
        layer = tt.nn.CausalSelfAttention(8, 2).double()
        xt = tt.Tensor(x.copy(), requires_grad=True)
        out = layer(xt)
        out.backward(np.cos(np.arange(out.size)).reshape(out.shape))
        results.append([out.data, xt.grad, layer.c_attn.weight.grad])
    assert len(block_rows_taken) == 1
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
