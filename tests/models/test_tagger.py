"""The bidirectional tagger: conv1d and the BiLSTM against PyTorch, padding invariance of emissions and
tags, gradcheck of the whole model's loss (CRF and softmax), the per-word feature seam, learning, errors."""

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer.data import BPETokenizer, WordTokenizer
from tinytransformer.data.word_features import CharVocab, tagging_batch
from tinytransformer.models import BiTagger, BiTaggerConfig
from tinytransformer.models.tagger import BiLSTM, CharCNN, conv1d, reverse_padded
from tinytransformer.optim import Adam

TOL = 1e-10
SENTENCES = [["@john", "flew", "to", "New", "York"], ["Hi"], ["see", "u", "at", "#NBA", "2017", "!"], ["ok", "Bob"]]
TAGS = [[1, 0, 0, 2, 3], [0], [0, 0, 0, 4, 0, 0], [0, 1]]


def _tiny(output="crf", **sizes):
    """A float64 tagger over SENTENCES' words and characters, small enough to gradcheck, and its inputs."""
    tokenizer, chars = WordTokenizer.train(SENTENCES), CharVocab.train(SENTENCES)
    options = dict(num_tags=5, vocab_size=tokenizer.vocab_size, word_dim=3, char_vocab_size=chars.vocab_size,
                   char_dim=3, char_filters=3, hidden_size=3, dropout=0.0, output=output)
    tt.manual_seed(0)
    model = BiTagger(BiTaggerConfig(**{**options, **sizes})).double()
    return model, dict(tokenizer=tokenizer, char_vocab=chars)


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_conv1d_matches_torch(padding, rng):
    x, w, b = rng.normal(size=(4, 6, 3)), rng.normal(size=(5, 3, 3)), rng.normal(size=5)
    ours = [tt.Tensor(a.copy(), requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = conv1d(*ours, padding=padding)
    want = torch.nn.functional.conv1d(theirs[0].transpose(1, 2), theirs[1], theirs[2], padding=padding).transpose(1, 2)
    np.testing.assert_allclose(y.data, want.detach().numpy(), rtol=TOL, atol=TOL)
    g = rng.normal(size=y.shape)
    y.backward(g)
    want.backward(torch.tensor(g))
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad, t.grad.numpy(), rtol=TOL, atol=TOL)
    assert tt.gradcheck(lambda *a: conv1d(*a, padding=padding), ours)


def test_reverse_padded_reverses_each_real_part_and_is_its_own_backward(rng):
    mask = np.array([[True, True, True, False], [True, False, False, False], [True] * 4])
    x = tt.Tensor(rng.normal(size=(3, 4, 2)), requires_grad=True)
    y = reverse_padded(x, mask).data
    np.testing.assert_array_equal(y[0, :3], x.data[0, 2::-1])
    np.testing.assert_array_equal(y[0, 3], x.data[0, 3])  # padding stays put
    np.testing.assert_array_equal(y[2], x.data[2, ::-1])
    np.testing.assert_array_equal(reverse_padded(tt.Tensor(y), mask).data, x.data)
    assert tt.gradcheck(lambda x: reverse_padded(x, mask), [x])


def test_bilstm_matches_torch_bidirectional_lstm_on_packed_sequences(rng):
    lengths, I, H = [5, 2, 4], 3, 4
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(I, H, batch_first=True, bidirectional=True).double()
    ours = BiLSTM(I, H, dtype=np.float64)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    rename = {k: "reverse_lstm." + k.removesuffix("_reverse") if k.endswith("_reverse") else "forward_lstm." + k
              for k in state}  # PyTorch's weight_ih_l0_reverse is our reverse_lstm.weight_ih_l0
    ours.load_state_dict({rename[k]: v for k, v in state.items()})
    x = rng.normal(size=(3, 5, I))
    mask = np.arange(5) < np.array(lengths)[:, None]
    xo, xt = tt.Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    out = ours(xo, mask)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, lengths, batch_first=True, enforce_sorted=False)
    want, _ = torch.nn.utils.rnn.pad_packed_sequence(theirs(packed)[0], batch_first=True)  # zeros at padding
    np.testing.assert_allclose(out.data, want.detach().numpy(), rtol=TOL, atol=TOL)
    g = rng.normal(size=out.shape)
    out.backward(g)
    want.backward(torch.tensor(g))
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=TOL, atol=TOL)
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        key = name.split(".", 1)[1] + ("_reverse" if name.startswith("reverse") else "")
        np.testing.assert_allclose(p.grad, grads[key].grad.numpy(), rtol=TOL, atol=TOL, err_msg=name)


def test_char_cnn_ignores_padding_characters():
    tt.manual_seed(0)
    cnn = CharCNN(6, 3, 4, kernel_size=3, dtype=np.float64)
    chars = np.array([[2, 3, 4, 0], [5, 0, 0, 0], [0, 0, 0, 0]])  # the last row: a padding word
    wide = np.concatenate([chars, np.zeros((3, 5), dtype=np.int64)], axis=1)
    np.testing.assert_allclose(cnn(chars).data, cnn(wide).data, rtol=0, atol=1e-15)
    np.testing.assert_allclose(cnn(chars[:1, :3]).data, cnn(chars).data[:1], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="odd"):
        CharCNN(6, 3, 4, kernel_size=2)


@pytest.mark.parametrize("output", ["crf", "softmax"])
def test_padding_never_changes_a_sentence(output):
    model, views = _tiny(output)
    batch = tagging_batch(SENTENCES, TAGS, **views)
    emissions, predicted = model.emissions(batch).data, model.predict(batch)
    for b, (words, tags) in enumerate(zip(SENTENCES, TAGS)):
        alone = tagging_batch([words], [tags], **views)
        np.testing.assert_allclose(emissions[b, :len(words)], model.emissions(alone).data[0], rtol=0, atol=1e-13)
        assert predicted[b] == model.predict(alone)[0] and len(predicted[b]) == len(words)
    loss = model(batch)[1].item()
    per_sentence = [model(tagging_batch([w], [t], **views))[1].item() for w, t in zip(SENTENCES, TAGS)]
    if output == "crf":  # negative log-likelihood averaged over sentences
        assert loss == pytest.approx(np.mean(per_sentence), abs=1e-12)
    else:  # cross-entropy averaged over words
        assert loss == pytest.approx(np.dot(per_sentence, [len(t) for t in TAGS]) / sum(map(len, TAGS)), abs=1e-12)


@pytest.mark.parametrize("output, num_layers", [("crf", 1), ("softmax", 2)])
def test_gradcheck_of_the_whole_model(output, num_layers):
    """Every element of every parameter against central differences (float64, eps 1e-6, atol 1e-8, rtol 1e-6)."""
    model, views = _tiny(output, num_layers=num_layers)
    batch = tagging_batch(SENTENCES[:3], TAGS[:3], **views)
    assert tt.gradcheck(lambda *_: model(batch)[1], list(model.parameters()))


def test_bpe_pieces_are_pooled_per_word():
    bpe = BPETokenizer.train(" ".join(w for s in SENTENCES for w in s) * 2, 270)
    model, views = _tiny(vocab_size=bpe.vocab_size, char_vocab_size=0)
    batch = tagging_batch(SENTENCES, TAGS, tokenizer=bpe)
    assert batch.pieces.shape[2] > 1
    emissions, loss = model(batch)
    assert emissions.shape == (4, 6, 5) and np.isfinite(loss.item())
    assert tt.gradcheck(lambda w: model(batch)[1], [model.embedding.weight], max_elements=40)


def test_extra_per_word_features_are_a_seam_gradients_flow_through():
    """``batch.extra`` (B, T, D): e.g. a pretrained encoder's per-word states; a Tensor keeps its graph."""
    model, views = _tiny(extra_dim=2)
    batch = tagging_batch(SENTENCES, TAGS, **views)
    batch.extra = tt.Tensor(np.random.default_rng(0).normal(size=batch.mask.shape + (2,)), requires_grad=True)
    extra = batch.extra

    def loss(x):
        batch.extra = x
        return model(batch)[1]
    assert tt.gradcheck(loss, [extra])
    batch.extra = extra.data  # a plain array works too
    assert model(batch)[0].shape == (4, 6, 5)
    batch.extra = None
    with pytest.raises(ValueError, match="batch.extra is None"):
        model(batch)


@pytest.mark.parametrize("output", ["crf", "softmax"])
def test_it_learns_a_small_tagging_rule(output):
    model, views = _tiny(output, word_dim=8, char_filters=8, hidden_size=8)
    batch = tagging_batch(SENTENCES, TAGS, **views)
    optimizer = Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        model(batch)[1].backward()
        optimizer.step()
    assert model.predict(batch) == TAGS
    assert model.training  # predict ran in eval mode and switched back


def test_float32_by_default():
    tokenizer = WordTokenizer.train(SENTENCES)
    model = BiTagger(BiTaggerConfig(num_tags=5, vocab_size=tokenizer.vocab_size, hidden_size=4))
    emissions, loss = model(tagging_batch(SENTENCES, TAGS, tokenizer=tokenizer))
    assert emissions.dtype == np.float32 and loss.dtype == np.float32


@pytest.mark.parametrize("options, message", [
    (dict(vocab_size=0, char_vocab_size=0, shapes=False), "every input is off"),
    (dict(output="bio"), "output must be one of"),
    (dict(num_tags=1), "num_tags"),
    (dict(hidden_size=0), "hidden_size"),
])
def test_config_errors(options, message):
    with pytest.raises(ValueError, match=message):
        BiTaggerConfig(**{"vocab_size": 10, **options})


def test_a_missing_view_is_named():
    model, views = _tiny()
    with pytest.raises(ValueError, match="batch.chars is None"):
        model(tagging_batch(SENTENCES, TAGS, tokenizer=views["tokenizer"]))
