"""Task heads: shapes, padding invariance, the losses against PyTorch, loading, freezing, per-group rates."""

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer.models import GPT, GPTConfig, SequenceClassifier, TokenClassifier
from tinytransformer.models.heads import IGNORE_INDEX, pool
from tinytransformer.optim import AdamW

CONFIG = GPTConfig(vocab_size=13, block_size=10, n_layer=2, n_head=2, n_embd=8)


def _ragged(seed=0, lengths=(3, 7, 1, 5)):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, CONFIG.vocab_size, n) for n in lengths]


def _pad(seqs, fill=0):
    T = max(len(s) for s in seqs)
    idx = np.full((len(seqs), T), fill)
    mask = np.ones((len(seqs), T), dtype=bool)
    for i, s in enumerate(seqs):
        idx[i, :len(s)], mask[i, :len(s)] = s, False
    return idx, mask


def _model(kind, n_out, **options):
    tt.manual_seed(0)
    cls = SequenceClassifier if kind == "classify" else TokenClassifier
    return cls(CONFIG, n_out, **options).double().eval()


@pytest.mark.parametrize("num_classes, shape", [(2, (4,)), (3, (4, 3))])
def test_sequence_classifier_shapes(num_classes, shape):
    idx, mask = _pad(_ragged())
    logits, loss = _model("classify", num_classes)(idx, mask, labels=np.array([0, 1, 1, 0]))
    assert logits.shape == shape and loss.shape == ()
    assert _model("classify", num_classes).predict_proba(idx, mask).shape == (4, num_classes)


def test_token_classifier_shapes():
    idx, mask = _pad(_ragged())
    model = _model("tag", 5)
    logits, loss = model(idx, mask, labels=np.where(mask, IGNORE_INDEX, 2))
    assert logits.shape == (4, 7, 5) and loss.shape == ()
    assert model.predict(idx, mask).shape == (4, 7)


@pytest.mark.parametrize("kind, options", [("classify", {"pooling": "mean"}), ("classify", {"pooling": "last"}), ("classify", {"pooling": "max"}),
                                           ("tag", {})])
@pytest.mark.parametrize("fill", [0, 5])
def test_padding_never_changes_a_prediction(kind, options, fill):
    seqs = _ragged()
    model = _model(kind, 3, **options)
    batched = model(*_pad(seqs, fill))[0].data
    for row, s in enumerate(seqs):
        alone = model(s[None, :])[0].data[0]
        got = batched[row] if kind == "classify" else batched[row, :len(s)]
        np.testing.assert_allclose(got, alone, rtol=1e-12, atol=1e-12)


def test_key_padding_mask_matters_for_mean_pooling():
    seqs = _ragged()
    idx, mask = _pad(seqs)
    model = _model("classify", 2)
    assert not np.allclose(model(idx, mask)[0].data, model(idx)[0].data)  # padding read as words changes logits


def test_pooling_values_and_gradient():
    rng = np.random.default_rng(1)
    h = tt.Tensor(rng.normal(size=(2, 4, 3)), requires_grad=True)
    mask = np.array([[False, False, True, True], [False, False, False, False]])
    np.testing.assert_allclose(pool(h, mask, "mean").data[0], h.data[0, :2].mean(axis=0))
    np.testing.assert_allclose(pool(h, mask, "last").data, h.data[[0, 1], [1, 3]])
    np.testing.assert_allclose(pool(h, mask, "max").data[0], h.data[0, :2].max(axis=0))
    for pooling in ("mean", "last", "max"):
        assert tt.gradcheck(lambda h, pooling=pooling: pool(h, mask, pooling), [h])


def test_two_class_loss_is_bce_with_logits_and_more_classes_cross_entropy():
    idx, mask = _pad(_ragged())
    labels = np.array([0, 1, 1, 0])
    binary = _model("classify", 2)
    logits, loss = binary(idx, mask, labels)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(logits.data), torch.tensor(labels * 1.0))
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    multi = _model("classify", 3)
    logits, loss = multi(idx, mask, np.array([0, 2, 1, 2]))
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits.data), torch.tensor([0, 2, 1, 2]))
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    probs = binary.predict_proba(idx, mask)
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-binary(idx, mask)[0].data)), rtol=1e-12)


def test_token_loss_ignores_unscored_positions():
    seqs = _ragged()
    model = _model("tag", 4)
    idx, mask = _pad(seqs)
    labels = np.where(mask, IGNORE_INDEX, 1)
    labels[0, 1] = IGNORE_INDEX  # an inner sub-word: no tag
    logits, loss = model(idx, mask, labels)
    scored = labels != IGNORE_INDEX
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits.data[scored]), torch.tensor(labels[scored]))
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)


def test_look_ahead_reads_the_next_token():
    model = _model("tag", 3)
    a, b = np.array([[1, 2, 3]]), np.array([[1, 2, 4]])
    la, lb = model(a)[0].data, model(b)[0].data
    np.testing.assert_array_equal(la[0, 0], lb[0, 0])  # two tokens before the change: unaffected
    assert not np.allclose(la[0, 1], lb[0, 1])  # the token before the change sees it


def test_load_body_copies_a_pretrained_gpt_and_leaves_the_head():
    tt.manual_seed(1)
    pretrained = GPT(CONFIG)
    model = _model("classify", 2).float()
    head_before = model.score.weight.data.copy()
    model.load_body(pretrained.state_dict())
    for name, value in pretrained.state_dict().items():
        np.testing.assert_array_equal(model.body.state_dict()[name], value, err_msg=name)
    np.testing.assert_array_equal(model.score.weight.data, head_before)
    with pytest.raises(ValueError, match="shape"):
        model.load_body(GPT(GPTConfig(**{**CONFIG.to_dict(), "n_embd": 4})).state_dict())


def _one_adam_step(model, groups):
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    idx, mask = _pad(_ragged())
    model.train()
    model(idx, mask, np.array([0, 1, 1, 0]))[1].backward()
    AdamW(groups, lr=0.5, weight_decay=0.0).step()
    return {name: np.abs(p.data - before[name]).max() for name, p in model.named_parameters()}


def test_per_group_learning_rates_are_applied():
    model = _model("classify", 2, dropout=0.0)
    groups = model.param_groups(lr=1e-2, body_lr=1e-4, weight_decay=0.1)
    assert [g["name"] for g in groups] == ["head", "head (no decay)", "body", "body (no decay)"]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0, 0.1, 0.0]
    for g in groups:
        g["weight_decay"] = 0.0
    moved = _one_adam_step(model, groups)
    # Adam's first step moves every parameter with a gradient by lr * g / |g| = +-lr
    np.testing.assert_allclose(moved["score.weight"], 1e-2, rtol=1e-4)
    np.testing.assert_allclose(moved["body.transformer.h.0.mlp.c_fc.weight"], 1e-4, rtol=1e-3)


def test_freeze_body_trains_only_the_head():
    model = _model("classify", 2).freeze_body()
    assert model.body_frozen
    groups = model.param_groups(lr=1e-2, body_lr=1e-3)
    assert {g["name"] for g in groups} == {"head", "head (no decay)"}
    moved = _one_adam_step(model, groups)
    assert all(moved[name] == 0 for name in moved if name.startswith("body."))
    assert all(p.grad is None for p in model.body.parameters())
    assert moved["score.weight"] > 0
    assert not model.freeze_body(False).body_frozen


@pytest.mark.parametrize("bad, match", [
    (lambda idx, mask: (idx, mask[:, :-1]), "key_padding_mask has shape"),
    (lambda idx, mask: (idx, mask[:, ::-1]), "padding goes on the right"),
    (lambda idx, mask: (idx, np.where(np.arange(idx.shape[1]) == 1, True, mask)), r"rows \[0, 1, 3\] break"),
])
def test_bad_masks_are_named(bad, match):
    idx, mask = _pad(_ragged())
    with pytest.raises(ValueError, match=match):
        _model("classify", 2)(*bad(idx, mask))


def test_bad_labels_and_options_are_named():
    idx, mask = _pad(_ragged())
    with pytest.raises(ValueError, match=r"class ids in \[0, 2\)"):
        _model("classify", 2)(idx, mask, np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="labels must have shape"):
        _model("classify", 3)(idx, mask, np.array([0, 1]))
    with pytest.raises(ValueError, match="tag ids"):
        _model("tag", 3)(idx, mask, np.full(idx.shape, 7))
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(CONFIG, 2, pooling="min")
    with pytest.raises(ValueError, match="num_classes"):
        SequenceClassifier(CONFIG, 1)
