"""RNN and LSTM cells and layers: against torch.nn (outputs and every gradient), gradcheck, the fused
sequence op against a loop of cells, truncated BPTT against chunked runs, dtypes and errors."""

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer.nn import LSTM, RNN, LSTMCell, RNNCell

TOL = {np.float64: 1e-10, np.float32: 1e-5}
I, H, B, T = 3, 4, 2, 5


def assert_close(ours, theirs, dtype, what=""):
    ours = ours.data if isinstance(ours, tt.Tensor) else ours
    theirs = theirs.detach().numpy()
    tol = TOL[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max()), err_msg=what)


def twins(ours_cls, torch_cls, dtype, **kwargs):
    """Our layer with the torch layer's weights (loaded by name), and the torch layer."""
    torch.manual_seed(0)
    theirs = torch_cls(**kwargs).to(torch.float64 if dtype == np.float64 else torch.float32)
    ours = ours_cls(**kwargs, dtype=dtype)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def pair(array, dtype):
    """The same values as our tensor and as a torch tensor, both requiring grad."""
    array = array.astype(dtype)
    return tt.Tensor(array.copy(), requires_grad=True), torch.tensor(array, requires_grad=True)


def check_grads(ours, theirs, inputs, dtype):
    for name, p in ours.named_parameters():
        assert_close(p.grad, dict(theirs.named_parameters())[name].grad, dtype, name)
    for k, (o, t) in enumerate(inputs):
        assert_close(o.grad, t.grad, dtype, f"input {k}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm"])
def test_cells_match_torch(kind, dtype, rng):
    if kind == "lstm":
        ours, theirs = twins(LSTMCell, torch.nn.LSTMCell, dtype, input_size=I, hidden_size=H)
    else:
        nl = kind.split("_")[1]
        ours, theirs = twins(RNNCell, torch.nn.RNNCell, dtype, input_size=I, hidden_size=H, nonlinearity=nl)
    x, h, c = pair(rng.standard_normal((B, I)), dtype), pair(rng.standard_normal((B, H)), dtype), \
        pair(rng.standard_normal((B, H)), dtype)
    w = rng.standard_normal((B, H))
    if kind == "lstm":
        (ho, co), (ht, ct) = ours(x[0], (h[0], c[0])), theirs(x[1], (h[1], c[1]))
        assert_close(co, ct, dtype, "c'")
        ((ho * w).sum() + (co * co).sum()).backward()
        ((ht * torch.tensor(w, dtype=ht.dtype)).sum() + (ct * ct).sum()).backward()
        check_grads(ours, theirs, [x, h, c], dtype)
    else:
        ho, ht = ours(x[0], h[0]), theirs(x[1], h[1])
        (ho * w).sum().backward()
        (ht * torch.tensor(w, dtype=ht.dtype)).sum().backward()
        check_grads(ours, theirs, [x, h], dtype)
    assert_close(ho, ht, dtype, "h'")
    assert ho.dtype == dtype


LAYER_CASES = {
    "rnn tanh, 2 layers, time-first, h0": dict(kind="rnn", nonlinearity="tanh", num_layers=2, batch_first=False),
    "rnn relu, batch-first": dict(kind="rnn", nonlinearity="relu", num_layers=1, batch_first=True),
    "rnn without bias, unbatched": dict(kind="rnn", num_layers=2, bias=False, unbatched=True),
    "lstm, 2 layers, batch-first, (h0, c0)": dict(kind="lstm", num_layers=2, batch_first=True),
    "lstm, time-first, no state": dict(kind="lstm", num_layers=1, batch_first=False, no_state=True),
    "lstm without bias, unbatched": dict(kind="lstm", num_layers=2, bias=False, unbatched=True),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", LAYER_CASES, ids=list(LAYER_CASES))
def test_layers_match_torch(case, dtype, rng):
    c = dict(LAYER_CASES[case])
    kind, unbatched, no_state = c.pop("kind"), c.pop("unbatched", False), c.pop("no_state", False)
    classes = (LSTM, torch.nn.LSTM) if kind == "lstm" else (RNN, torch.nn.RNN)
    ours, theirs = twins(*classes, dtype, input_size=I, hidden_size=H, **c)
    L = c["num_layers"]
    shape = (T, I) if unbatched else ((B, T, I) if c.get("batch_first") else (T, B, I))
    state_shape = (L, H) if unbatched else (L, B, H)
    x = pair(rng.standard_normal(shape), dtype)
    states = [pair(rng.standard_normal(state_shape), dtype) for _ in range(2 if kind == "lstm" else 1)]
    if no_state:
        out_o, final_o = ours(x[0])
        out_t, final_t = theirs(x[1])
        states = []
    elif kind == "lstm":
        out_o, final_o = ours(x[0], (states[0][0], states[1][0]))
        out_t, final_t = theirs(x[1], (states[0][1], states[1][1]))
    else:
        out_o, final_o = ours(x[0], states[0][0])
        out_t, final_t = theirs(x[1], states[0][1])
    finals_o = final_o if kind == "lstm" else (final_o,)
    finals_t = final_t if kind == "lstm" else (final_t,)
    assert_close(out_o, out_t, dtype, "output")
    for k, (fo, ft) in enumerate(zip(finals_o, finals_t)):
        assert_close(fo, ft, dtype, f"final state {k}")
    w = rng.standard_normal(out_o.shape)
    loss_o = (out_o * w).sum() + sum(((f * f) * (k + 1)).sum() for k, f in enumerate(finals_o))
    loss_t = (out_t * torch.tensor(w, dtype=out_t.dtype)).sum() + sum(
        ((f * f) * (k + 1)).sum() for k, f in enumerate(finals_t))
    loss_o.backward()
    loss_t.backward()
    check_grads(ours, theirs, [x, *states], dtype)
    assert out_o.dtype == dtype


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_fused_sequence_equals_a_loop_of_cells(kind, rng):
    """The hand-written BPTT of the layer against autograd's, through the composed cells."""
    tt.manual_seed(0)
    layer = (LSTM if kind == "lstm" else RNN)(I, H, batch_first=True, dtype=np.float64)
    cell = (LSTMCell if kind == "lstm" else RNNCell)(I, H, dtype=np.float64)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})  # weight_ih_l0 -> weight_ih
    x_layer = tt.Tensor(rng.standard_normal((B, T, I)), requires_grad=True)
    x_cell = tt.Tensor(x_layer.data.copy(), requires_grad=True)
    out, _ = layer(x_layer)
    state = None
    outputs = []
    for t in range(T):
        state = cell(x_cell[:, t], state)
        outputs.append(state[0] if kind == "lstm" else state)
    looped = tt.stack(outputs, axis=1)  # (B, T, H)
    np.testing.assert_allclose(out.data, looped.data, rtol=1e-12, atol=1e-12)
    w = rng.standard_normal(out.shape)
    (out * w).sum().backward()
    (looped * w).sum().backward()
    np.testing.assert_allclose(x_layer.grad, x_cell.grad, rtol=1e-10, atol=1e-12)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(cell, name[:-3]).grad, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_gradcheck_layers_and_cells(kind, rng):
    tt.manual_seed(1)
    layer = (LSTM if kind == "lstm" else RNN)(2, 3, num_layers=2, dtype=np.float64)
    x = tt.Tensor(rng.standard_normal((4, 2, 2)), requires_grad=True)
    h0 = tt.Tensor(rng.standard_normal((2, 2, 3)), requires_grad=True)
    if kind == "lstm":
        c0 = tt.Tensor(rng.standard_normal((2, 2, 3)), requires_grad=True)
        tt.gradcheck(lambda x, h0, c0, *p: tt.cat([layer(x, (h0, c0))[0].reshape(-1),
                                                   layer(x, (h0, c0))[1][1].reshape(-1)]),
                     [x, h0, c0, *layer.parameters()])
    else:
        tt.gradcheck(lambda x, h0, *p: layer(x, h0)[0], [x, h0, *layer.parameters()])
    cell = (LSTMCell if kind == "lstm" else RNNCell)(2, 3, dtype=np.float64)
    h = tt.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    state = (h, tt.Tensor(rng.standard_normal((2, 3)), requires_grad=True)) if kind == "lstm" else h
    x = tt.Tensor(rng.standard_normal((2, 2)), requires_grad=True)
    tt.gradcheck(lambda x, *p: tt.cat(list(cell(x, state)), axis=-1) if kind == "lstm" else cell(x, state),
                 [x, *([h, state[1]] if kind == "lstm" else [h]), *cell.parameters()])


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_truncated_bptt_equals_chunks_with_detached_state(kind, k, rng):
    """bptt_steps=k: same outputs; gradients of torch run chunk by chunk with the state detached between."""
    ours, theirs = twins(LSTM if kind == "lstm" else RNN, torch.nn.LSTM if kind == "lstm" else torch.nn.RNN,
                         np.float64, input_size=I, hidden_size=H, num_layers=2)
    x = pair(rng.standard_normal((7, B, I)), np.float64)
    w = rng.standard_normal((7, B, H))
    out_o, _ = ours(x[0], bptt_steps=k)
    full, _ = ours(tt.Tensor(x[0].data), bptt_steps=None)
    np.testing.assert_array_equal(out_o.data, full.data)
    state, chunks = None, []
    for start in range(0, 7, k):
        out, state = theirs(x[1][start : start + k], state)
        state = tuple(s.detach() for s in state) if kind == "lstm" else state.detach()
        chunks.append(out)
    out_t = torch.cat(chunks)
    assert_close(out_o, out_t, np.float64, "output")
    (out_o * w).sum().backward()
    (out_t * torch.tensor(w)).sum().backward()
    check_grads(ours, theirs, [x], np.float64)
    if k < 7:  # the last step's output sends no gradient back across the last boundary
        x_only = tt.Tensor(x[0].data, requires_grad=True)
        last, _ = ours(x_only, bptt_steps=k)
        last[-1].sum().backward()
        boundary = (6 // k) * k
        assert np.all(x_only.grad[:boundary] == 0) and np.any(x_only.grad[boundary:] != 0)


def test_vanishing_gradient_rnn_vs_lstm_through_the_state(rng):
    """With the LSTM's forget gate biased open, the gradient from the last step reaches step 0 far larger
    than through a tanh RNN of the same size: the claim lesson 13 plots."""
    tt.manual_seed(0)
    norms = {}
    for name, layer in (("rnn", RNN(4, 16)), ("lstm", LSTM(4, 16))):
        if name == "lstm":
            layer.bias_ih_l0.data[16:32] = 3.0  # forget gate near 1
        x = tt.Tensor(rng.standard_normal((60, 1, 4)).astype(np.float32), requires_grad=True)
        out, _ = layer(x)
        out[-1].sum().backward()
        norms[name] = np.linalg.norm(x.grad[0])
    assert norms["lstm"] > 100 * norms["rnn"], norms


def test_state_dict_names_are_torchs():
    assert list(RNN(3, 4, num_layers=2).state_dict()) == list(torch.nn.RNN(3, 4, num_layers=2).state_dict())
    assert list(LSTM(3, 4, bias=False).state_dict()) == list(torch.nn.LSTM(3, 4, bias=False).state_dict())
    assert list(LSTMCell(3, 4).state_dict()) == list(torch.nn.LSTMCell(3, 4).state_dict())


def test_dropout_between_layers_is_identity_in_eval_mode(rng):
    layer = LSTM(I, H, num_layers=2, dropout=0.5)
    x = tt.Tensor(rng.standard_normal((T, B, I)).astype(np.float32))
    layer.eval()
    first, _ = layer(x)
    second, _ = layer(x)
    np.testing.assert_array_equal(first.data, second.data)
    layer.train()
    assert not np.array_equal(layer(x)[0].data, first.data)


def test_errors_name_the_layer_and_the_shapes():
    with pytest.raises(ValueError, match=r"LSTM: input must be \(T, B, 3\)"):
        LSTM(3, 4)(tt.zeros(5, 2, 2))
    with pytest.raises(ValueError, match=r"RNN: initial state must be \(num_layers, B, H\) = \(2, 2, 4\)"):
        RNN(3, 4, num_layers=2)(tt.zeros(5, 2, 3), tt.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="RNNCell: the state must be"):
        RNNCell(3, 4)(tt.zeros(2, 3), tt.zeros(3, 4))
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"LSTM: bptt_steps must be in \[1, inf\), got 0"):
        LSTM(3, 4)(tt.zeros(5, 2, 3), bptt_steps=0)
    with pytest.raises(ValueError, match=r"LSTM: input_size must be in \[1, inf\), got 0"):
        LSTM(0, 4)
