"""Layers against PyTorch and against central differences: Linear, Embedding, LayerNorm, RMSNorm,
Dropout and the activations.

Every layer is checked two ways: ``tt.gradcheck`` in float64 on the input and on every parameter,
and against the same torch module after loading its state dict into ours (outputs, the input's
gradient and every parameter's gradient; float64 to rtol 1e-10, float32 to 1e-5). Dropout's masks
come from a different generator than torch's, so it is checked by its statistics instead.
"""

import numpy as np
import pytest
import torch

import tinytransformer as tt
import tinytransformer.nn.functional as F
from tinytransformer import nn
from tinytransformer.nn.embedding import scatter_add_rows

TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def normal(rng, shape, scale=1.0, shift=0.0):
    return scale * rng.standard_normal(shape) + shift


# name: (our layer, the torch layer, an input given a generator)
LAYERS = {
    "linear": (lambda: nn.Linear(5, 3), lambda: torch.nn.Linear(5, 3), lambda r: normal(r, (2, 4, 5))),
    "linear_no_bias": (
        lambda: nn.Linear(5, 3, bias=False), lambda: torch.nn.Linear(5, 3, bias=False), lambda r: normal(r, (4, 5)),
    ),
    "embedding": (lambda: nn.Embedding(7, 4), lambda: torch.nn.Embedding(7, 4), lambda r: r.integers(0, 7, (3, 5))),
    "embedding_padding": (  # ids repeat and hit the padding row often
        lambda: nn.Embedding(7, 4, padding_idx=2),
        lambda: torch.nn.Embedding(7, 4, padding_idx=2),
        lambda r: r.integers(0, 4, (2, 3, 4)),
    ),
    "layer_norm": (lambda: nn.LayerNorm(6), lambda: torch.nn.LayerNorm(6), lambda r: normal(r, (2, 3, 6), 3, 1)),
    "layer_norm_2d": (
        lambda: nn.LayerNorm((3, 4)), lambda: torch.nn.LayerNorm((3, 4)), lambda r: normal(r, (2, 3, 4), 2, -1),
    ),
    "layer_norm_no_affine": (
        lambda: nn.LayerNorm(6, elementwise_affine=False),
        lambda: torch.nn.LayerNorm(6, elementwise_affine=False),
        lambda r: normal(r, (4, 6)),
    ),
    "layer_norm_no_bias": (
        lambda: nn.LayerNorm(6, bias=False), lambda: torch.nn.LayerNorm(6, bias=False), lambda r: normal(r, (4, 6)),
    ),
    "rms_norm": (lambda: nn.RMSNorm(6), lambda: torch.nn.RMSNorm(6), lambda r: normal(r, (2, 3, 6), 2, 0.5)),
    "rms_norm_2d_eps": (
        lambda: nn.RMSNorm((3, 4), eps=1e-3), lambda: torch.nn.RMSNorm((3, 4), eps=1e-3), lambda r: normal(r, (2, 3, 4)),
    ),
    "gelu": (nn.GELU, torch.nn.GELU, lambda r: normal(r, (3, 5), 2)),
    "gelu_tanh": (lambda: nn.GELU("tanh"), lambda: torch.nn.GELU("tanh"), lambda r: normal(r, (3, 5), 2)),
    "relu": (nn.ReLU, torch.nn.ReLU, lambda r: normal(r, (3, 5))),
    "tanh": (nn.Tanh, torch.nn.Tanh, lambda r: normal(r, (3, 5))),
    "sigmoid": (nn.Sigmoid, torch.nn.Sigmoid, lambda r: normal(r, (3, 5), 3)),
}


def as_input(x, dtype, requires_grad=True):
    """A float array becomes a leaf of ``dtype`` needing grad; integer ids stay as they are."""
    if x.dtype.kind != "f":
        return tt.Tensor(x)
    return tt.Tensor(x.astype(dtype), requires_grad=requires_grad)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_torch(name, dtype):
    make_ours, make_theirs, make_input = LAYERS[name]
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    theirs = make_theirs().to(TORCH_DTYPE[dtype])
    with torch.no_grad():  # random weights, not the init's ones and zeros
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p))
    ours = make_ours().to(dtype)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})

    x = make_input(rng)
    ours_x = as_input(x, dtype)
    theirs_x = torch.from_numpy(np.array(ours_x.data))
    theirs_x.requires_grad_(ours_x.requires_grad)
    y, ty = ours(ours_x), theirs(theirs_x)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.data, ty.detach().numpy(), **TOLERANCE[dtype])

    g = rng.standard_normal(y.shape).astype(dtype)
    y.backward(g)
    ty.backward(torch.from_numpy(g))
    if ours_x.requires_grad:
        assert ours_x.grad.dtype == dtype
        np.testing.assert_allclose(ours_x.grad, theirs_x.grad.numpy(), **TOLERANCE[dtype])
    theirs_params = dict(theirs.named_parameters())
    assert [k for k, _ in ours.named_parameters()] == list(theirs_params)
    for k, p in ours.named_parameters():
        assert p.grad.dtype == dtype, k
        np.testing.assert_allclose(p.grad, theirs_params[k].grad.numpy(), err_msg=k, **TOLERANCE[dtype])


@pytest.mark.parametrize("name", LAYERS)
def test_layer_gradcheck(name):
    make_ours, _, make_input = LAYERS[name]
    tt.manual_seed(0)
    rng = np.random.default_rng(1)
    layer = make_ours().double()
    for p in layer.parameters():  # away from the init's ones and zeros
        p.data[...] = rng.standard_normal(p.shape)
    x = make_input(rng)
    if getattr(layer, "padding_idx", None) is not None:  # the padding row gets no gradient by design
        x = np.where(x == layer.padding_idx, layer.padding_idx + 1, x)
    x = as_input(x, np.float64)
    params = list(layer.parameters())
    assert tt.gradcheck(lambda x, *params: layer(x), [x, *params])


# ------------------------------------------------------------------- LayerNorm
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, normalized_shape", [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5))])
def test_fused_layer_norm_matches_composed(shape, normalized_shape, dtype):
    rng = np.random.default_rng(2)
    x_values, w_values, b_values = normal(rng, shape, 2, 3), normal(rng, normalized_shape), normal(rng, normalized_shape)
    g = rng.standard_normal(shape).astype(dtype)
    results = []
    for fn in (F.layer_norm, F.layer_norm_composed):
        x, w, b = (tt.Tensor(a.astype(dtype), requires_grad=True) for a in (x_values, w_values, b_values))
        y = fn(x, normalized_shape, w, b)
        y.backward(g)
        assert y.dtype == x.grad.dtype == w.grad.dtype == b.grad.dtype == dtype
        results.append((y.data, x.grad, w.grad, b.grad))
    for fused, composed in zip(*results):
        np.testing.assert_allclose(fused, composed, **TOLERANCE[dtype])


@pytest.mark.parametrize("fn", [F.layer_norm, F.layer_norm_composed])
def test_layer_norm_functional_gradcheck(fn):
    rng = np.random.default_rng(3)
    x, w, b = (tt.Tensor(normal(rng, s), requires_grad=True) for s in ((3, 2, 5), (2, 5), (2, 5)))
    assert tt.gradcheck(lambda x, w, b: fn(x, (2, 5), w, b, eps=1e-3), [x, w, b])
    assert tt.gradcheck(lambda x: fn(x, 5), [x])


def test_layer_norm_keeps_precision_far_from_zero():
    # a large common offset: naive E[x^2] - E[x]^2 would lose every digit in float32
    x = tt.Tensor((1e4 + np.arange(8)).astype(np.float32).reshape(1, 8))
    y = F.layer_norm(x, 8)
    expected = (np.arange(8) - 3.5) / np.sqrt(np.var(np.arange(8)) + 1e-5)
    np.testing.assert_allclose(y.data[0], expected, rtol=1e-5, atol=1e-5)


def test_normalization_rejects_the_wrong_feature_size():
    x = tt.Tensor(np.zeros((2, 6), dtype=np.float32))
    with pytest.raises(ValueError, match=r"layer_norm: input of shape \(2, 6\) does not end in normalized_shape \(8,\)"):
        nn.LayerNorm(8)(x)
    with pytest.raises(ValueError, match=r"rms_norm: input of shape \(2, 6\) does not end in normalized_shape \(4,\)"):
        nn.RMSNorm(4)(x)
    with pytest.raises(ValueError, match=r"layer_norm: weight has shape \(5,\) but normalized_shape is \(6,\)"):
        F.layer_norm(x, 6, tt.Tensor(np.ones(5, dtype=np.float32)))


def test_linear_rejects_the_wrong_feature_size():
    with pytest.raises(ValueError, match=r"linear: input has 6 features \(shape \(2, 6\)\) but the weight expects 4"):
        nn.Linear(4, 3)(tt.Tensor(np.zeros((2, 6), dtype=np.float32)))


# ------------------------------------------------------------------- Embedding
def test_embedding_init_is_standard_normal_with_zero_padding_row_and_seeded():
    tt.manual_seed(0)
    emb = nn.Embedding(500, 32, padding_idx=-1)
    assert emb.padding_idx == 499 and emb.weight.dtype == np.float32
    assert not emb.weight.data[499].any()
    w = emb.weight.data[:499]
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
    tt.manual_seed(0)
    np.testing.assert_array_equal(nn.Embedding(500, 32, padding_idx=-1).weight.data, emb.weight.data)


def test_embedding_backward_is_a_scatter_add_with_no_gradient_for_padding():
    rng = np.random.default_rng(4)
    weight = tt.Tensor(rng.standard_normal((6, 3)), requires_grad=True)
    ids = tt.Tensor(np.array([[1, 4, 1], [0, 1, 5]]))  # an int Tensor; id 1 three times, 2 and 3 never
    y = F.embedding(ids, weight, padding_idx=0)
    assert y.shape == (2, 3, 3)
    np.testing.assert_array_equal(y.data, weight.data[ids.data])
    g = rng.standard_normal(y.shape)
    y.backward(g)
    expected = np.zeros((6, 3))
    np.add.at(expected, ids.data, g)
    expected[0] = 0
    np.testing.assert_allclose(weight.grad, expected, rtol=1e-14)
    assert not weight.grad[[0, 2, 3]].any()


def test_scatter_add_rows_equals_np_add_at():
    rng = np.random.default_rng(5)
    ids, rows = rng.integers(0, 50, 2000), rng.standard_normal((2000, 7)).astype(np.float32)
    expected = np.zeros((60, 7), dtype=np.float32)
    np.add.at(expected, ids, rows)
    out = scatter_add_rows(ids, rows, 60)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert not scatter_add_rows(ids[:0], rows[:0], 60).any()


def test_embedding_rejects_bad_ids():
    emb = nn.Embedding(10, 4)
    with pytest.raises(IndexError, match=r"embedding: ids \[-1, 10, 12\] are out of range; .*\[0, 9\] for num_embeddings=10"):
        emb(np.array([[3, 10], [-1, 12]]))
    with pytest.raises(TypeError, match="embedding: input must hold integer ids, got dtype float32"):
        emb(tt.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"Embedding: padding_idx must be in \[-10, 10\), got 10"):
        nn.Embedding(10, 4, padding_idx=10)


# --------------------------------------------------------------------- Dropout
def test_dropout_statistics_dtype_and_scale():
    tt.manual_seed(0)
    p = 0.3
    x = tt.ones(400_000)
    y = F.dropout(x, p)
    assert y.dtype == np.float32
    zeroed = np.mean(y.data == 0)
    assert abs(zeroed - p) < 0.005  # the standard error is 0.0007
    assert abs(y.data.mean() - 1) < 0.01  # inverted dropout preserves the mean
    np.testing.assert_allclose(np.unique(y.data), [0, 1 / (1 - p)], rtol=1e-6)


def test_dropout_masks_are_seeded():
    x = tt.ones(1000)
    tt.manual_seed(7)
    a = F.dropout(x, 0.5).data
    tt.manual_seed(7)
    b = F.dropout(x, 0.5).data
    c = F.dropout(x, 0.5).data  # the generator moved on: a new mask
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_dropout_is_the_identity_in_eval_and_for_p_zero():
    x = tt.Tensor(np.arange(1.0, 7.0).reshape(2, 3), requires_grad=True)
    layer = nn.Dropout(0.5)
    assert layer.training
    layer.eval()
    assert layer(x) is x
    assert F.dropout(x, 0.9, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert repr(layer) == "Dropout(p=0.5)"


def test_dropout_gradient_uses_the_forward_mask():
    tt.manual_seed(3)
    rng = np.random.default_rng(3)
    x = tt.Tensor(rng.uniform(1, 2, (50, 40)), requires_grad=True)  # nonzero, so y == 0 marks a dropped element
    y = F.dropout(x, 0.25)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    kept = y.data != 0
    np.testing.assert_allclose(x.grad, g * kept / 0.75, rtol=1e-14)
    np.testing.assert_allclose(y.data[kept], x.data[kept] / 0.75, rtol=1e-14)


def test_dropout_gradcheck_with_a_fixed_mask():
    x = tt.Tensor(np.random.default_rng(4).standard_normal((4, 5)), requires_grad=True)

    def fn(x):
        tt.manual_seed(11)  # the same mask on every call
        return F.dropout(x, 0.4)

    assert tt.gradcheck(fn, [x])


def test_dropout_p_one_gives_zeros_and_bad_p_raises():
    x = tt.Tensor(np.ones((3, 4)), requires_grad=True)
    y = F.dropout(x, 1.0)
    y.backward(np.ones((3, 4)))
    assert not y.data.any() and not x.grad.any()
    with pytest.raises(ValueError, match=r"dropout: dropout probability p must be in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError, match=r"Dropout: dropout probability p must be in \[0, 1\], got -0.1"):
        nn.Dropout(-0.1)


def test_gelu_rejects_an_unknown_approximation():
    with pytest.raises(ValueError, match="GELU: approximate must be 'none' or 'tanh', got 'erf'"):
        nn.GELU("erf")
