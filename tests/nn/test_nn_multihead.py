"""MultiheadAttention against torch.nn.MultiheadAttention: layouts, masks, weights, every gradient."""

import math

import numpy as np
import pytest
import torch

import tinytransformer as tt

TOL = {np.float64: 1e-10, np.float32: 1e-5}
E, H, N = 8, 2, 3

# Each case overrides some of: L, S, self (query is key is value), kdim, vdim, unbatched,
# key_padding_mask, attn_mask ("bool" (L, S), "float" (N*H, L, S)), need_weights, average, is_causal.
BASE = dict(L=4, S=4, self=True, kdim=None, vdim=None, unbatched=False, key_padding_mask=False, attn_mask=None,
            need_weights=True, average=True, is_causal=False)
CASES = {
    "self-attention": {},
    "fused path (need_weights=False)": dict(need_weights=False),
    "cross-attention": dict(self=False, S=6),
    "key padding": dict(self=False, S=6, key_padding_mask=True),
    "bool attn_mask (L, S)": dict(attn_mask="bool"),
    "float attn_mask (N*H, L, S) + padding": dict(attn_mask="float", key_padding_mask=True, need_weights=False),
    "per-head weights": dict(average=False, key_padding_mask=True),
    "kdim and vdim": dict(self=False, S=5, kdim=5, vdim=3),
    "unbatched": dict(unbatched=True, attn_mask="float", key_padding_mask=True),
    "unbatched per-head": dict(unbatched=True, average=False, self=False, S=6),
    "causal hint with its mask": dict(attn_mask="causal", is_causal=True, need_weights=False),
}


def assert_close(ours, theirs, dtype, what=""):
    ours = ours.data if isinstance(ours, tt.Tensor) else ours
    theirs = theirs.detach().numpy()
    tol = TOL[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max()), err_msg=what)


def make_inputs(c, batch_first, rng):
    """Query, key, value arrays and the two masks for case ``c`` (PyTorch's conventions: True = ignore)."""
    def seq(length, width):
        if c["unbatched"]:
            return rng.standard_normal((length, width))
        return rng.standard_normal((N, length, width) if batch_first else (length, N, width))

    query = seq(c["L"], E)
    key = query if c["self"] else seq(c["S"], c["kdim"] or E)
    value = query if c["self"] else seq(c["S"], c["vdim"] or E)
    L, S = c["L"], c["S"]
    padding = None
    if c["key_padding_mask"]:
        padding = rng.random((N, S)) < 0.3
        padding[:, 0] = False  # every query keeps at least one key (PyTorch gives NaN otherwise)
        padding = padding[0] if c["unbatched"] else padding
    mask = None
    heads = H if c["unbatched"] else N * H
    if c["attn_mask"] == "bool":
        mask = rng.random((L, S)) < 0.3
        mask[:, 0] = False
    elif c["attn_mask"] == "float":
        mask = rng.standard_normal((heads, L, S))
    elif c["attn_mask"] == "causal":
        mask = ~np.tri(L, S, dtype=bool)
    return query, key, value, padding, mask


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_multihead_attention_matches_torch(case, batch_first, dtype, rng):
    c = {**BASE, **CASES[case]}
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=batch_first, kdim=c["kdim"], vdim=c["vdim"])
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():  # PyTorch initialises the biases to zero; make them matter
        theirs.in_proj_bias.normal_()
        theirs.out_proj.bias.normal_()
    ours = tt.nn.MultiheadAttention(E, H, batch_first=batch_first, kdim=c["kdim"], vdim=c["vdim"]).to(dtype)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})

    query, key, value, padding, mask = make_inputs(c, batch_first, rng)
    arrays = [query] if c["self"] else [query, key, value]
    ts = [tt.Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    tts = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    qkv, tqkv = (ts * 3, tts * 3) if c["self"] else (ts, tts)
    options = dict(need_weights=c["need_weights"], average_attn_weights=c["average"], is_causal=c["is_causal"])
    tmask = None if mask is None else torch.tensor(mask if mask.dtype == bool else mask.astype(dtype))
    out, weights = ours(*qkv, key_padding_mask=padding, attn_mask=mask, **options)
    tpadding = None if padding is None else torch.tensor(padding)
    if padding is not None and c["attn_mask"] == "float":  # PyTorch wants both masks of one type
        tpadding = torch.tensor(np.where(padding, -np.inf, 0.0).astype(dtype))
    tout, tweights = theirs(*tqkv, key_padding_mask=tpadding, attn_mask=tmask, **options)

    assert out.dtype == dtype and out.shape == tuple(tout.shape)
    assert_close(out, tout, dtype, "output")
    g = rng.standard_normal(out.shape).astype(dtype)
    loss, tloss = (out * g).sum(), (tout * torch.tensor(g)).sum()
    if c["need_weights"]:
        assert weights.shape == tuple(tweights.shape)
        assert_close(weights, tweights, dtype, "weights")
        gw = rng.standard_normal(weights.shape).astype(dtype)
        loss, tloss = loss + (weights * gw).sum(), tloss + (tweights * torch.tensor(gw)).sum()
    else:
        assert weights is None and tweights is None
    loss.backward()
    tloss.backward()
    for i, (t, tt_) in enumerate(zip(ts, tts)):
        assert_close(t.grad, tt_.grad, dtype, f"input {i} gradient")
    their_params = dict(theirs.named_parameters())
    assert {n for n, _ in ours.named_parameters()} == set(their_params)
    for name, p in ours.named_parameters():
        assert_close(p.grad, their_params[name].grad, dtype, name)


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_gradcheck(need_weights, rng):
    layer = tt.nn.MultiheadAttention(4, 2, batch_first=True).double()
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    x = tt.Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    memory = tt.Tensor(rng.standard_normal((2, 5, 4)), requires_grad=True)
    padding = np.array([[False] * 5, [False, False, True, True, True]])

    def fn(x, memory, *params):
        out, weights = layer(x, memory, memory, key_padding_mask=padding, need_weights=need_weights)
        return out if weights is None else out + weights.sum(axis=-1, keepdims=True)

    tt.gradcheck(fn, [x, memory, *layer.parameters()])


def test_multihead_attention_fully_padded_sequence_gives_zeros_not_nan(rng):
    layer = tt.nn.MultiheadAttention(4, 2, batch_first=True, bias=False)
    x = tt.Tensor(rng.standard_normal((2, 3, 4)).astype(np.float32), requires_grad=True)
    padding = np.array([[False, False, True], [True, True, True]])  # the second sequence is all padding
    for need_weights in (True, False):
        out, weights = layer(x, x, x, key_padding_mask=padding, need_weights=need_weights)
        out.sum().backward()
        assert np.all(out.data[1] == 0) and np.all(np.isfinite(x.grad))
        assert np.abs(out.data[0]).sum() > 0
        if need_weights:
            np.testing.assert_allclose(weights.data.sum(axis=-1), [[1, 1, 1], [0, 0, 0]], rtol=1e-6)


def test_multihead_attention_causal_without_a_mask(rng):
    """is_causal=True alone builds the causal mask (PyTorch insists on being given it)."""
    layer = tt.nn.MultiheadAttention(4, 2).double()
    x = tt.Tensor(rng.standard_normal((5, 2, 4)))
    causal, _ = layer(x, x, x, is_causal=True, need_weights=False)
    masked, _ = layer(x, x, x, attn_mask=~np.tri(5, dtype=bool), need_weights=False)
    np.testing.assert_allclose(causal.data, masked.data, rtol=1e-12)
    unmasked, _ = layer(x, x, x, need_weights=False)
    assert not np.allclose(causal.data, unmasked.data)


def test_multihead_attention_init_and_state_dict_names():
    tt.manual_seed(0)
    layer = tt.nn.MultiheadAttention(12, 3)
    assert list(layer.state_dict()) == list(torch.nn.MultiheadAttention(12, 3).state_dict())
    assert np.all(layer.in_proj_bias.data == 0) and np.all(layer.out_proj.bias.data == 0)
    bound = math.sqrt(6 / (12 + 36))  # xavier uniform, as PyTorch
    assert np.abs(layer.in_proj_weight.data).max() <= bound and np.abs(layer.in_proj_weight.data).max() > 0.9 * bound
    separate = tt.nn.MultiheadAttention(12, 3, kdim=5, vdim=7)
    assert list(separate.state_dict()) == list(torch.nn.MultiheadAttention(12, 3, kdim=5, vdim=7).state_dict())


def test_multihead_attention_bad_input():
    with pytest.raises(ValueError, match=r"embed_dim=10 must be a positive multiple of num_heads=4"):
        tt.nn.MultiheadAttention(10, 4)
    layer = tt.nn.MultiheadAttention(8, 2)
    x = tt.zeros(4, 3, 8)
    with pytest.raises(ValueError, match=r"query must be \(L, N, 8\).*got shape \(4, 3, 6\)"):
        layer(tt.zeros(4, 3, 6), x, x)
    with pytest.raises(ValueError, match=r"key must be shaped like query \(4, 3, 8\).*got key \(5, 2, 8\)"):
        layer(x, tt.zeros(5, 2, 8), tt.zeros(5, 2, 8))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(L, S\) = \(4, 4\) or \(N \* num_heads, L, S\) "
                                         r"= \(6, 4, 4\), got \(4, 5\)"):
        layer(x, x, x, attn_mask=np.zeros((4, 5), dtype=bool))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(N, S\) = \(3, 4\), got \(4, 3\)"):
        layer(x, x, x, key_padding_mask=np.zeros((4, 3), dtype=bool))
    with pytest.raises(TypeError, match="masks must be boolean or float"):
        layer(x, x, x, attn_mask=np.zeros((4, 4), dtype=int))


def test_multihead_attention_boolean_and_float_masks_give_the_same_numbers(rng):
    """PyTorch's two mask kinds: True = ignore, or -inf added. Both give the same bits, fused or composed."""
    layer = tt.nn.MultiheadAttention(4, 2, batch_first=True).double()
    x = tt.Tensor(rng.standard_normal((2, 3, 4)))
    memory = tt.Tensor(rng.standard_normal((2, 5, 4)))
    padding = np.array([[False] * 5, [False, False, True, True, True]])
    ignore = rng.random((3, 5)) < 0.3
    ignore[:, 0] = False
    as_float = lambda m: np.where(m, -np.inf, 0.0)  # noqa: E731
    for need_weights in (True, False):
        by_bool = layer(x, memory, memory, key_padding_mask=padding, attn_mask=ignore, need_weights=need_weights)
        by_float = layer(x, memory, memory, key_padding_mask=as_float(padding), attn_mask=as_float(ignore),
                         need_weights=need_weights)
        mixed = layer(x, memory, memory, key_padding_mask=padding, attn_mask=as_float(ignore),
                      need_weights=need_weights)
        for other in (by_float, mixed):
            np.testing.assert_array_equal(by_bool[0].data, other[0].data)
            if need_weights:
                np.testing.assert_array_equal(by_bool[1].data, other[1].data)


def test_multihead_attention_records_weights_without_changing_its_output(rng):
    layer = tt.nn.MultiheadAttention(4, 2, dropout=0.3).double()
    x = tt.Tensor(rng.standard_normal((3, 2, 4)))  # (L, N, E)
    padding = np.array([[False, False, True], [False, False, False]])
    layer.eval()
    out, weights = layer(x, x, x, key_padding_mask=padding, is_causal=True)
    plain, _ = layer(x, x, x, key_padding_mask=padding, is_causal=True, need_weights=False)
    layer.record = True
    recorded, none = layer(x, x, x, key_padding_mask=padding, is_causal=True, need_weights=False)
    assert none is None
    np.testing.assert_array_equal(recorded.data, plain.data)
    np.testing.assert_allclose(layer.last_weights, weights.data, rtol=1e-12, atol=0)  # what need_weights returns
    layer(x, x, x, average_attn_weights=False)
    assert layer.last_weights.shape == (2, 2, 3, 3)
    layer(x[:, 0], x[:, 0], x[:, 0])  # unbatched (L, E)
    assert layer.last_weights.shape == (3, 3)
    layer.train()
    outputs = []
    for record in (False, True):
        layer.record = record
        tt.manual_seed(1)
        outputs.append(layer(x, x, x, need_weights=False)[0].data)
    np.testing.assert_array_equal(*outputs)


def test_multihead_attention_rotates_queries_and_keys(rng):
    """rotary=RotaryEmbedding: the scores see relative positions; values are not rotated."""
    layer = tt.nn.MultiheadAttention(8, 2, batch_first=True).double()
    rotary = tt.nn.RotaryEmbedding(4, max_len=16, dtype=np.float64)
    x = tt.Tensor(rng.standard_normal((1, 5, 8)))
    out, weights = layer(x, x, x, rotary=rotary)
    E, H, hd = 8, 2, 4
    w, b = layer.in_proj_weight.data, layer.in_proj_bias.data
    q, k, v = ((x.data @ w[i * E:(i + 1) * E].T + b[i * E:(i + 1) * E]).reshape(1, 5, H, hd).transpose(0, 2, 1, 3)
               for i in range(3))
    q, k = rotary(tt.Tensor(q)).data, rotary(tt.Tensor(k)).data
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)  # (1, H, 5, 5)
    np.testing.assert_allclose(weights.data, p.mean(axis=1), rtol=1e-10)
    expected = layer.out_proj(tt.Tensor((p @ v).transpose(0, 2, 1, 3).reshape(1, 5, E))).data
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)
    fused, _ = layer(x, x, x, rotary=rotary, need_weights=False)
    np.testing.assert_allclose(fused.data, expected, rtol=1e-10, atol=1e-12)
