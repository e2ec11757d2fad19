"""The encoder-decoder Transformer: against torch.nn.Transformer with loaded weights (outputs and every
gradient, post-LN and pre-LN, padding masks), gradcheck of a tiny translation model, masks, label smoothing."""

import warnings

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer, Transformer

D, NHEAD, FF = 8, 2, 16


def torch_twin(norm_first, dtype=torch.float64):
    torch.manual_seed(0)
    with warnings.catch_warnings():  # "enable_nested_tensor is True, but ... norm_first was True"
        warnings.simplefilter("ignore")
        theirs = torch.nn.Transformer(D, NHEAD, 2, 2, FF, dropout=0.0, batch_first=True, norm_first=norm_first)
    theirs = theirs.to(dtype)
    ours = Transformer(D, NHEAD, 2, 2, FF, dropout=0.0, norm_first=norm_first,
                       dtype=np.float64 if dtype == torch.float64 else np.float32)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_transformer_matches_torch(norm_first, dtype, tol, rng):
    ours, theirs = torch_twin(norm_first, dtype)
    npdtype = np.float64 if dtype == torch.float64 else np.float32
    src, tgt = rng.standard_normal((3, 5, D)).astype(npdtype), rng.standard_normal((3, 4, D)).astype(npdtype)
    src_pad = np.zeros((3, 5), dtype=bool)
    src_pad[0, 3:], src_pad[2, 4] = True, True
    tgt_pad = np.zeros((3, 4), dtype=bool)
    tgt_pad[1, 3] = True
    s_o, t_o = tt.Tensor(src.copy(), requires_grad=True), tt.Tensor(tgt.copy(), requires_grad=True)
    s_t, t_t = torch.tensor(src, requires_grad=True), torch.tensor(tgt, requires_grad=True)
    out_o = ours(s_o, t_o, src_key_padding_mask=src_pad, tgt_key_padding_mask=tgt_pad,
                 memory_key_padding_mask=src_pad)
    out_t = theirs(s_t, t_t, tgt_mask=torch.ones(4, 4, dtype=torch.bool).triu(1),  # True = may not attend
                   src_key_padding_mask=torch.tensor(src_pad), tgt_key_padding_mask=torch.tensor(tgt_pad),
                   memory_key_padding_mask=torch.tensor(src_pad), tgt_is_causal=True)
    assert out_o.dtype == npdtype

    def close(a, b, what):
        b = b.detach().numpy()
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, np.abs(b).max()), err_msg=what)

    close(out_o.data, out_t, "output")
    w = rng.standard_normal(out_o.shape)
    (out_o * w.astype(npdtype)).sum().backward()
    (out_t * torch.tensor(w, dtype=dtype)).sum().backward()
    close(s_o.grad, s_t.grad, "d src")
    close(t_o.grad, t_t.grad, "d tgt")
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        close(p.grad, theirs_params[name].grad, name)


def tiny_model(positional, dtype=np.float64, **overrides):
    tt.manual_seed(0)
    config = Seq2SeqConfig(src_vocab_size=7, tgt_vocab_size=6, d_model=8, nhead=2, num_encoder_layers=1,
                           num_decoder_layers=1, dim_feedforward=12, positional=positional, max_len=16, **overrides)
    return Seq2SeqTransformer(config).to(dtype)


SRC = np.array([[5, 6, 2, 0], [3, 4, 5, 6]])  # 0 = <pad>
TGT_IN = np.array([[1, 3, 4], [1, 5, 0]])
TGT_OUT = np.array([[3, 4, 2], [5, 2, 0]])


@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "rotary"])
def test_gradcheck_tiny_seq2seq(positional):
    model = tiny_model(positional, dropout=0.0)
    params = list(model.parameters())
    # max_elements=0: every parameter is checked along random directions (a full sweep would take minutes)
    tt.gradcheck(lambda *p: model(SRC, TGT_IN, TGT_OUT, label_smoothing=0.1)[1], params, max_elements=0)
    # element by element on the embeddings, with no <pad> in the target (the padding row gets no gradient)
    tt.gradcheck(lambda *p: model(SRC, np.array([[1, 3, 4], [1, 5, 2]]))[0], params[:4], max_elements=64)


def test_padding_does_not_change_the_translation():
    model = tiny_model("sinusoidal")
    short, _ = model(SRC[:1, :3], TGT_IN[:1])
    padded, _ = model(np.concatenate([SRC[:1], np.zeros((1, 5), dtype=np.int64)], axis=1), TGT_IN[:1])
    np.testing.assert_allclose(short.data, padded.data, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("positional", ["sinusoidal", "rotary"])
def test_decoder_is_causal(positional):
    model = tiny_model(positional)
    a, _ = model(SRC, np.array([[1, 3, 4, 5]] * 2))
    b, _ = model(SRC, np.array([[1, 3, 2, 2]] * 2))
    np.testing.assert_allclose(a.data[:, :2], b.data[:, :2], rtol=1e-12, atol=1e-12)
    assert not np.allclose(a.data[:, 2:], b.data[:, 2:])


def test_loss_ignores_padding_and_smooths_like_torch():
    model = tiny_model("learned")
    logits, loss = model(SRC, TGT_IN, TGT_OUT, label_smoothing=0.1)
    expected = torch.nn.functional.cross_entropy(
        torch.tensor(logits.data.reshape(-1, 6)), torch.tensor(TGT_OUT.reshape(-1)), ignore_index=0,
        label_smoothing=0.1,
    )
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    assert model.src_tok_emb.weight.data[0].tolist() == [0.0] * 8  # <pad> embeds to zero


def test_recorded_cross_attention_is_a_distribution_over_real_source_tokens():
    model = tiny_model("sinusoidal")
    attn = model.transformer.decoder.layers[0].multihead_attn
    assert type(attn) is tt.nn.MultiheadAttention  # the layer itself, reused, not a subclass
    attn.record = True
    model(SRC, TGT_IN)
    weights = attn.last_weights  # (B, T, S)
    assert weights.shape == (2, 3, 4)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(weights[0, :, 3] == 0)  # the padded source position gets no attention


def test_float32_stays_float32_and_errors_are_clear():
    model = tiny_model("rotary", dtype=np.float32)
    logits, loss = model(SRC, TGT_IN, TGT_OUT)
    assert logits.dtype == np.float32 and loss.dtype == np.float32
    loss.backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="tgt_out must have tgt_in's shape"):
        model(SRC, TGT_IN, TGT_OUT[:, :2])
    with pytest.raises(ValueError, match="max_len=16"):
        model(np.ones((1, 17), dtype=np.int64), TGT_IN[:1])
    with pytest.raises(ValueError, match="positional must be one of"):
        Seq2SeqConfig(src_vocab_size=3, tgt_vocab_size=3, positional="alibi")
    with pytest.raises(ValueError, match="src and tgt must be"):
        Transformer(8, 2, 1, 1, 8)(tt.zeros(2, 3, 8), tt.zeros(3, 3, 8))
