"""Scaled dot-product attention (fused and composed), masked_softmax, CausalSelfAttention and AdditiveAttention.

Each is held to PyTorch (outputs and every gradient) and to central differences.
"""

import math

import numpy as np
import pytest
import torch

import tinytransformer as tt
import tinytransformer.nn.functional as F

SDPA = {"fused": F.scaled_dot_product_attention, "composed": F.scaled_dot_product_attention_composed}
TOL = {np.float64: 1e-10, np.float32: 1e-5}


def assert_close(ours, theirs, dtype, what=""):
    ours = ours.data if isinstance(ours, tt.Tensor) else ours
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    tol = TOL[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max()), err_msg=what)


def pair(rng, shape, dtype):
    """The same random values as a tinytransformer tensor and a torch tensor, both requiring grad."""
    a = rng.standard_normal(shape).astype(dtype)
    return tt.Tensor(a.copy(), requires_grad=True), torch.tensor(a, requires_grad=True)


# Each case: (q shape, k shape, v shape, mask kind, mask shape or None, is_causal, scale)
CASES = {
    "plain": ((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), None, None, False, None),
    "bool (L, S) broadcast": ((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), "bool", (4, 5), False, None),
    "bool per batch": ((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), "bool", (2, 1, 4, 5), False, None),
    "float additive": ((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), "float", (2, 3, 4, 5), False, None),
    "causal square": ((2, 2, 5, 4), (2, 2, 5, 4), (2, 2, 5, 4), None, None, True, None),
    "causal L < S": ((1, 3, 4), (1, 6, 4), (1, 6, 2), None, None, True, 0.3),
    "3-D, own scale": ((3, 4, 8), (3, 5, 8), (3, 5, 8), "bool", (3, 4, 5), False, 0.7),
    "broadcast key over batch": ((2, 3, 4, 8), (1, 3, 5, 8), (1, 3, 5, 6), None, None, False, None),
}


def make_mask(rng, kind, shape):
    if kind == "bool":
        mask = rng.random(shape) > 0.3
        mask[..., 0] = True  # every query keeps a key: PyTorch would give NaN for an empty row
        return mask
    if kind == "float":
        mask = rng.standard_normal(shape)
        mask[rng.random(shape) < 0.3] = -np.inf
        mask[..., 0] = 0.0
        return mask
    return None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("impl", SDPA)
@pytest.mark.parametrize("case", CASES)
def test_sdpa_matches_torch(case, impl, dtype, rng):
    qs, ks, vs, kind, mshape, is_causal, scale = CASES[case]
    (q, tq), (k, tk), (v, tv) = pair(rng, qs, dtype), pair(rng, ks, dtype), pair(rng, vs, dtype)
    mask = make_mask(rng, kind, mshape)
    out = SDPA[impl](q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale)
    tmask = None if mask is None else torch.tensor(mask.astype(dtype) if kind == "float" else mask)
    expected = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask, is_causal=is_causal,
                                                                scale=scale)
    assert out.dtype == dtype and out.shape == tuple(expected.shape)
    assert_close(out, expected, dtype, "output")
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(g)
    expected.backward(torch.tensor(g))
    for name, ours, theirs in (("q", q, tq), ("k", k, tk), ("v", v, tv)):
        assert_close(ours.grad, theirs.grad, dtype, f"d{name}")


@pytest.mark.parametrize("impl", SDPA)
def test_float_mask_gets_its_gradient(impl, rng):
    (q, tq), (k, tk), (v, tv) = (pair(rng, (2, 3, 4), np.float64) for _ in range(3))
    m, tm = pair(rng, (3, 3), np.float64)  # a learned bias, broadcast over the batch
    SDPA[impl](q, k, v, attn_mask=m).sum().backward()
    torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm).sum().backward()
    assert_close(m.grad, tm.grad, np.float64)


@pytest.mark.parametrize("impl", SDPA)
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_fully_masked_row_gives_zeros_and_zero_gradient(impl, kind, rng):
    q, k, v = (tt.Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True) for _ in range(3))
    keep = np.ones((2, 3, 3), dtype=bool)
    keep[1, 2] = False  # query 2 of batch 1 may see no key
    mask = keep if kind == "bool" else np.where(keep, 0.0, -np.inf)
    out = SDPA[impl](q, k, v, attn_mask=mask)
    out.sum().backward()
    assert np.all(out.data[1, 2] == 0) and np.all(np.isfinite(out.data))
    assert np.all(q.grad[1, 2] == 0)
    for t in (q, k, v):
        assert np.all(np.isfinite(t.grad))
    assert np.abs(out.data[0]).sum() > 0
    tt.gradcheck(lambda q, k, v: SDPA[impl](q, k, v, attn_mask=mask), [q, k, v])


@pytest.mark.parametrize("impl", SDPA)
@pytest.mark.parametrize("options", [{}, {"is_causal": True}, {"attn_mask": "bool"}, {"attn_mask": "float"}])
def test_sdpa_gradcheck(impl, options, rng):
    q, k, v = (tt.Tensor(rng.standard_normal((2, 4, 3)), requires_grad=True) for _ in range(3))
    options = dict(options)
    if "attn_mask" in options:
        options["attn_mask"] = make_mask(rng, options["attn_mask"], (4, 4))
    tt.gradcheck(lambda q, k, v: SDPA[impl](q, k, v, **options), [q, k, v])


def test_fused_and_composed_agree_with_dropout(rng):
    """Same seed, same dropout mask: outputs and gradients agree, and dropout changes the result."""
    data = [rng.standard_normal((2, 2, 5, 4)) for _ in range(3)]
    results = []
    for impl in SDPA.values():
        q, k, v = (tt.Tensor(d.copy(), requires_grad=True) for d in data)
        tt.manual_seed(7)
        out = impl(q, k, v, dropout_p=0.4, is_causal=True)
        out.backward(np.cos(np.arange(out.size)).reshape(out.shape))
        results.append([out.data, q.grad, k.grad, v.grad])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    no_dropout = F.scaled_dot_product_attention(*(tt.Tensor(d) for d in data), is_causal=True)
    assert not np.allclose(results[0][0], no_dropout.data)


def test_sdpa_keeps_float32(rng):
    q = tt.Tensor(rng.standard_normal((2, 3, 4)).astype(np.float32), requires_grad=True)
    mask = np.zeros((3, 3))  # a float64 mask must not upcast
    for impl in SDPA.values():
        out = impl(q, q, q, attn_mask=mask, dropout_p=0.1)
        out.sum().backward()
        assert out.dtype == np.float32 and q.grad.dtype == np.float32


@pytest.mark.parametrize("impl", SDPA)
def test_sdpa_bad_input(impl):
    q, k, v = tt.zeros(2, 3, 4), tt.zeros(2, 5, 4), tt.zeros(2, 5, 6)
    fn = SDPA[impl]
    with pytest.raises(ValueError, match=r"query has embedding size 4 .* key has 3"):
        fn(q, tt.zeros(2, 5, 3), v)
    with pytest.raises(ValueError, match=r"same sequence length.*\(2, 5, 4\).*\(2, 4, 6\)"):
        fn(q, k, tt.zeros(2, 4, 6))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 4\) does not broadcast .* \(2, 3, 5\)"):
        fn(q, k, v, attn_mask=np.ones((3, 4), dtype=bool))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        fn(q, k, v, attn_mask=np.ones((3, 5), dtype=bool), is_causal=True)
    with pytest.raises(TypeError, match="attn_mask must be boolean"):
        fn(q, k, v, attn_mask=np.ones((3, 5), dtype=int))
    with pytest.raises(ValueError, match="dropout_p"):
        fn(q, k, v, dropout_p=1.5)


# ----------------------------------------------------------------------------- masked_softmax
def test_masked_softmax_takes_the_sdpa_mask_convention_and_matches_torch(rng):
    """Boolean True = take part, float = added, is_causal = lower triangle; a row with no key left is zeros."""
    scores = rng.standard_normal((2, 4, 5))
    keep = rng.random((2, 4, 5)) > 0.3
    keep[..., 0] = True
    t, ts = tt.Tensor(scores, requires_grad=True), torch.tensor(scores, requires_grad=True)
    out = F.masked_softmax(t, keep)
    expected = torch.softmax(ts.masked_fill(~torch.tensor(keep), -math.inf), dim=-1)
    assert_close(out, expected, np.float64)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    expected.backward(torch.tensor(g))
    assert_close(t.grad, ts.grad, np.float64)
    additive = F.masked_softmax(tt.Tensor(scores), np.where(keep, 0.0, -np.inf))
    np.testing.assert_array_equal(additive.data, out.data)
    causal = F.masked_softmax(tt.Tensor(scores), is_causal=True)
    np.testing.assert_array_equal(causal.data, F.masked_softmax(tt.Tensor(scores), F.causal_mask(4, 5)).data)
    both = F.masked_softmax(tt.Tensor(scores), keep, is_causal=True)
    np.testing.assert_array_equal(both.data, F.masked_softmax(tt.Tensor(scores), keep & F.causal_mask(4, 5)).data)
    assert np.all(F.masked_softmax(tt.Tensor(scores), np.zeros(5, dtype=bool)).data == 0)
    with pytest.raises(TypeError, match="attn_mask must be boolean"):
        F.masked_softmax(tt.Tensor(scores), np.ones((4, 5), dtype=int))


# ----------------------------------------------------------------------------- CausalSelfAttention
class TorchCausalSelfAttention(torch.nn.Module):
    """nanoGPT's attention, written here as the reference (same parameter names)."""

    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.c_attn = torch.nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = torch.nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x, allowed=None):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if allowed is None:
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


def compare_modules(ours, theirs, x, dtype, rng, our_args=(), their_args=()):
    """Load theirs into ours; compare the outputs, the input's gradient and every parameter's gradient."""
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    ours.to(dtype).load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    xt, xtt = tt.Tensor(x.astype(dtype), requires_grad=True), torch.tensor(x.astype(dtype), requires_grad=True)
    out, expected = ours(xt, *our_args), theirs(xtt, *their_args)
    assert_close(out, expected, dtype, "output")
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(g)
    expected.backward(torch.tensor(g))
    assert_close(xt.grad, xtt.grad, dtype, "input gradient")
    theirs_params = dict(theirs.named_parameters())
    assert {n for n, _ in ours.named_parameters()} == set(theirs_params)
    for name, p in ours.named_parameters():
        assert_close(p.grad, theirs_params[name].grad, dtype, name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
def test_causal_self_attention_matches_nanogpt(dtype, bias, rng):
    torch.manual_seed(0)
    x = rng.standard_normal((2, 5, 8))
    compare_modules(tt.nn.CausalSelfAttention(8, 2, bias=bias), TorchCausalSelfAttention(8, 2, bias), x, dtype, rng)


@pytest.mark.parametrize("causal", [True, False])
def test_self_attention_with_key_padding(causal, rng):
    torch.manual_seed(0)
    padding = np.zeros((2, 5), dtype=bool)
    padding[1, 3:] = True  # the second sequence has 3 real tokens
    allowed = ~padding[:, None, None, :] & (np.tri(5, dtype=bool) if causal else True)
    ours = tt.nn.CausalSelfAttention(8, 2, causal=causal)
    compare_modules(ours, TorchCausalSelfAttention(8, 2), rng.standard_normal((2, 5, 8)), np.float64, rng,
                    (padding,), (torch.tensor(allowed),))


def test_causal_self_attention_is_causal_and_gradchecks(rng):
    layer = tt.nn.CausalSelfAttention(6, 3).double()
    x = tt.Tensor(rng.standard_normal((2, 4, 6)), requires_grad=True)
    tt.gradcheck(lambda x, *params: layer(x), [x, *layer.parameters()])
    changed = x.data.copy()
    changed[:, 3] += 1.0  # the last token cannot change what earlier tokens see
    np.testing.assert_allclose(layer(tt.Tensor(changed)).data[:, :3], layer(x).data[:, :3], rtol=1e-12)


def test_causal_self_attention_dropout_only_in_training(rng):
    layer = tt.nn.CausalSelfAttention(8, 2, dropout=0.5)
    x = tt.Tensor(rng.standard_normal((1, 4, 8)).astype(np.float32))
    assert not np.allclose(layer(x).data, layer(x).data)
    layer.eval()
    np.testing.assert_array_equal(layer(x).data, layer(x).data)


def test_causal_self_attention_records_the_weights_it_uses(rng):
    """record = True keeps each head's probabilities in last_weights; the output, and dropout's draws, do not change."""
    B, T, C, nh = 2, 5, 8, 2
    layer = tt.nn.CausalSelfAttention(C, nh, dropout=0.3).double()
    x = tt.Tensor(rng.standard_normal((B, T, C)))
    layer.eval()
    plain = layer(x).data
    layer.record = True
    np.testing.assert_array_equal(layer(x).data, plain)
    weights = layer.last_weights  # (B, nh, T, T)
    assert isinstance(weights, np.ndarray) and weights.shape == (B, nh, T, T)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(np.triu(weights, 1) == 0)
    v = layer.c_attn(x).data[..., 2 * C:].reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)  # (B, nh, T, hs)
    y = (weights @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
    np.testing.assert_allclose(layer.c_proj(tt.Tensor(y)).data, plain, rtol=1e-10, atol=1e-12)

    padding = np.zeros((B, T), dtype=bool)
    padding[1, 3:] = True
    layer(x, padding)
    assert np.all(layer.last_weights[1][..., 3:] == 0)
    with tt.no_grad():
        cache = tt.nn.KVCache()
        layer(tt.Tensor(x.data[:, :3]), cache=cache)
        layer(tt.Tensor(x.data[:, 3:]), cache=cache)
    np.testing.assert_allclose(layer.last_weights, weights[:, :, 3:], rtol=1e-10, atol=1e-12)

    layer.train()
    outputs = []
    for record in (False, True):
        layer.record = record
        tt.manual_seed(1)
        outputs.append(layer(x).data)
    np.testing.assert_array_equal(*outputs)


def test_causal_self_attention_bad_input():
    with pytest.raises(ValueError, match=r"n_embd=10 is not divisible by n_head=3"):
        tt.nn.CausalSelfAttention(10, 3)
    layer = tt.nn.CausalSelfAttention(8, 2)
    with pytest.raises(ValueError, match=r"expected input \(B, T, 8\), got shape \(2, 5, 6\)"):
        layer(tt.zeros(2, 5, 6))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, T\) = \(2, 5\), got \(2, 4\)"):
        layer(tt.zeros(2, 5, 8), np.zeros((2, 4), dtype=bool))


# ------------------------------------------------------------------------------ AdditiveAttention
def torch_additive(q, k, v, wq, wk, wv, keep=None):
    """Bahdanau scoring written directly in torch: v^T tanh(W_q q + W_k k), softmax over keys."""
    scores = (torch.tanh((q @ wq.T).unsqueeze(-2) + (k @ wk.T).unsqueeze(-3)) @ wv.T).squeeze(-1)
    if keep is not None:
        scores = scores.masked_fill(~keep, -math.inf)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


@pytest.mark.parametrize("masked", [False, True])
def test_additive_attention_matches_torch_and_gradchecks(masked, rng):
    layer = tt.nn.AdditiveAttention(query_dim=3, key_dim=4, hidden_dim=5).double()
    q, tq = pair(rng, (2, 3, 3), np.float64)
    k, tk = pair(rng, (2, 6, 4), np.float64)
    v, tv = pair(rng, (2, 6, 2), np.float64)
    keep = rng.random((2, 1, 6)) > 0.4 if masked else None
    if masked:
        keep[..., 0] = True
    context, weights = layer(q, k, v, attn_mask=keep)
    tparams = [torch.tensor(p.data, requires_grad=True) for p in (layer.W_q.weight, layer.W_k.weight, layer.v.weight)]
    tcontext, tweights = torch_additive(tq, tk, tv, *tparams, None if keep is None else torch.tensor(keep))
    assert_close(context, tcontext, np.float64)
    assert_close(weights, tweights, np.float64)
    (context.sum() + (weights * weights).sum()).backward()
    (tcontext.sum() + (tweights * tweights).sum()).backward()
    for ours, theirs in zip([q, k, v, layer.W_q.weight, layer.W_k.weight, layer.v.weight], [tq, tk, tv, *tparams]):
        assert_close(ours.grad, theirs.grad, np.float64)
    tt.gradcheck(lambda q, k, v, *params: layer(q, k, v, attn_mask=keep)[0], [q, k, v, *layer.parameters()])


def test_additive_attention_value_defaults_to_key_and_bad_input(rng):
    layer = tt.nn.AdditiveAttention(3, 4, 5)
    q, k = tt.Tensor(rng.standard_normal((2, 3)).astype(np.float32)), tt.Tensor(rng.standard_normal((6, 4)).astype(np.float32))
    context, weights = layer(q, k)
    assert context.shape == (2, 4) and weights.shape == (2, 6) and context.dtype == np.float32
    np.testing.assert_allclose(weights.data.sum(axis=-1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"expected query \(\.\.\., 3\) and key \(\.\.\., 4\), got query \(2, 3\) and key \(6, 5\)"):
        layer(q, tt.zeros(6, 5))
    with pytest.raises(ValueError, match=r"attn_mask must be boolean or float and broadcast to \(\.\.\., L, S\) = \(2, 6\)"):
        layer(q, k, attn_mask=np.ones((2, 5), dtype=bool))
    keep = np.array([True, True, False, True, False, True])  # the same keys hidden by a boolean or a float mask
    _, by_bool = layer(q, k, attn_mask=keep)
    _, by_float = layer(q, k, attn_mask=np.where(keep, 0.0, -np.inf).astype(np.float32))
    np.testing.assert_array_equal(by_bool.data, by_float.data)
    assert np.all(by_bool.data[:, ~keep] == 0)
