"""MLP and TransformerBlock against torch twins with GPT-2's parameter names, both LayerNorm placements."""

import numpy as np
import pytest
import torch

import tinytransformer as tt

TOL = {np.float64: 1e-10, np.float32: 1e-5}
TORCH_ACTIVATIONS = {"gelu": torch.nn.GELU(), "gelu_tanh": torch.nn.GELU(approximate="tanh"), "relu": torch.nn.ReLU()}


class TorchMLP(torch.nn.Module):
    def __init__(self, n_embd, hidden_dim, activation="gelu", bias=True):
        super().__init__()
        self.c_fc = torch.nn.Linear(n_embd, hidden_dim, bias=bias)
        self.act = TORCH_ACTIVATIONS[activation]
        self.c_proj = torch.nn.Linear(hidden_dim, n_embd, bias=bias)

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class TorchSelfAttention(torch.nn.Module):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.c_attn = torch.nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = torch.nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x, allowed):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class TorchBlock(torch.nn.Module):
    """nanoGPT's Block, with the post-LN order of the original paper as an option."""

    def __init__(self, n_embd, n_head, bias=True, norm_first=True):
        super().__init__()
        self.norm_first = norm_first
        self.ln_1 = torch.nn.LayerNorm(n_embd, bias=bias)
        self.attn = TorchSelfAttention(n_embd, n_head, bias)
        self.ln_2 = torch.nn.LayerNorm(n_embd, bias=bias)
        self.mlp = TorchMLP(n_embd, 4 * n_embd, bias=bias)

    def forward(self, x, allowed):
        if self.norm_first:
            x = x + self.attn(self.ln_1(x), allowed)
            return x + self.mlp(self.ln_2(x))
        x = self.ln_1(x + self.attn(x, allowed))
        return self.ln_2(x + self.mlp(x))


def randomize(module):
    """Non-trivial values for every parameter (LayerNorm starts at weight 1, bias 0)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.5)
    return module


def compare(ours, theirs, x, dtype, rng, our_args=(), their_args=()):
    """Load theirs into ours; compare output, input gradient and every parameter gradient."""
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    ours.to(dtype).load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    xt, xtt = tt.Tensor(x.astype(dtype), requires_grad=True), torch.tensor(x.astype(dtype), requires_grad=True)
    out, expected = ours(xt, *our_args), theirs(xtt, *their_args)
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(g)
    expected.backward(torch.tensor(g))
    tol = TOL[dtype]
    their_params = dict(theirs.named_parameters())
    pairs = [("output", out.data, expected), ("input gradient", xt.grad, xtt.grad)]
    pairs += [(name, p.grad, their_params[name].grad) for name, p in ours.named_parameters()]
    assert {n for n, _ in ours.named_parameters()} == set(their_params)
    for what, a, b in pairs:
        b = b.detach().numpy()
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, np.abs(b).max()), err_msg=what)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "relu"])
def test_mlp_matches_torch(activation, dtype, rng):
    torch.manual_seed(0)
    ours = tt.nn.MLP(6, hidden_dim=10, activation=activation)
    compare(ours, randomize(TorchMLP(6, 10, activation)), rng.standard_normal((2, 3, 6)), dtype, rng)


def test_mlp_defaults_gradcheck_and_bad_activation(rng):
    mlp = tt.nn.MLP(4, bias=False)
    assert mlp.c_fc.weight.shape == (16, 4) and mlp.c_proj.weight.shape == (4, 16) and mlp.c_fc.bias is None
    mlp.double()
    x = tt.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    tt.gradcheck(lambda x, *params: mlp(x), [x, *mlp.parameters()])
    with pytest.raises(ValueError, match=r"activation must be one of \['gelu', 'gelu_tanh', 'relu'\], got 'swish'"):
        tt.nn.MLP(4, activation="swish")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_linear_gelu_is_linear_then_gelu(approximate, bias, dtype, backend, rng):
    """The fused op against the composition it replaces: the same output bit for bit, the same gradients."""
    F = tt.nn.functional
    x, w = rng.standard_normal((2, 5, 6)).astype(dtype), rng.standard_normal((7, 6)).astype(dtype)
    b = rng.standard_normal(7).astype(dtype) if bias else None
    grad = rng.standard_normal((2, 5, 7)).astype(dtype)
    results = []
    with tt.kernels.use_backend(backend):
        for fused in (True, False):
            params = [tt.Tensor(a.copy(), requires_grad=True) for a in (x, w, b) if a is not None]
            y = (F.linear_gelu(*params, approximate=approximate) if fused
                 else F.gelu(F.linear(*params), approximate=approximate))
            y.backward(grad)
            results.append([y.data] + [p.grad for p in params])
    fused, composed = results
    if backend == "numpy":  # the same NumPy operations; Numba's loops may contract a multiply-add differently
        np.testing.assert_array_equal(fused[0], composed[0])
    np.testing.assert_allclose(fused[0], composed[0], rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).eps)
    for a, b_ in zip(fused[1:], composed[1:]):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b_, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_linear_gelu_gradcheck_and_mlp_uses_it(approximate, rng):
    """float64 central differences (gradcheck: |analytic - numeric| <= 1e-8 + 1e-6 |numeric|); the MLP runs
    c_fc and a GELU as one graph node, and a plain activation (ReLU) as two."""
    x, w, b = (tt.Tensor(rng.standard_normal(shape), requires_grad=True) for shape in ((3, 4, 5), (6, 5), (6,)))
    assert tt.gradcheck(lambda x, w, b: tt.nn.functional.linear_gelu(x, w, b, approximate), [x, w, b])
    assert tt.gradcheck(lambda x, w: tt.nn.functional.linear_gelu(x, w, None, approximate), [x, w])
    for activation, first in (("gelu", "LinearGELUFunction"), ("relu", "ReLU")):
        mlp = tt.nn.MLP(5, hidden_dim=6, activation=activation).double()
        y = mlp(x)
        assert y._ctx.parents[0]._ctx.fn.__name__ == first  # c_proj's input
    with pytest.raises(ValueError, match="linear_gelu: approximate must be 'none' or 'tanh', got 'erf'"):
        tt.nn.functional.linear_gelu(x, w, b, "erf")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("norm_first", [True, False])
def test_causal_block_matches_torch(norm_first, bias, dtype, rng):
    torch.manual_seed(0)
    ours = tt.nn.TransformerBlock(8, 2, bias=bias, norm_first=norm_first)
    theirs = randomize(TorchBlock(8, 2, bias, norm_first))
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    compare(ours, theirs, rng.standard_normal((2, 5, 8)), dtype, rng, (), (causal,))


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_block_with_padding_matches_torch(norm_first, rng):
    torch.manual_seed(1)
    padding = np.zeros((2, 6), dtype=bool)
    padding[0, 4:] = True
    ours = tt.nn.TransformerBlock(8, 4, norm_first=norm_first, causal=False)
    theirs = randomize(TorchBlock(8, 4, norm_first=norm_first))
    allowed = torch.tensor(~padding[:, None, None, :])  # (B, 1, 1, T)
    compare(ours, theirs, rng.standard_normal((2, 6, 8)), np.float64, rng, (padding,), (allowed,))


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_gradcheck(norm_first, rng):
    block = tt.nn.TransformerBlock(4, 2, norm_first=norm_first).double()
    for p in block.parameters():
        p.data[...] = rng.normal(0.0, 0.5, p.shape)
    x = tt.Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    tt.gradcheck(lambda x, *params: block(x), [x, *block.parameters()])


def test_block_names_dropout_and_bad_input(rng):
    block = tt.nn.TransformerBlock(8, 2, dropout=0.3)
    names = [n for n, _ in block.named_parameters()]
    assert names == [
        "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
        "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
    ]
    x = tt.Tensor(rng.standard_normal((1, 4, 8)).astype(np.float32))
    assert not np.allclose(block(x).data, block(x).data)
    block.eval()
    np.testing.assert_array_equal(block(x).data, block(x).data)
    assert block(x).dtype == np.float32
    with pytest.raises(ValueError, match=r"n_embd=8 is not divisible by n_head=3"):
        tt.nn.TransformerBlock(8, 3)
    with pytest.raises(ValueError, match=r"does not end in normalized_shape \(8,\)"):
        block(tt.zeros(1, 4, 6))
