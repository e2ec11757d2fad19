"""BERT: state dicts both ways with Hugging Face's ``BertForMaskedLM``, gradients, padding, the fast MLM loss."""

import numpy as np
import pytest
import torch
import transformers

import tinytransformer as tt
from tinytransformer.models import Bert, BertConfig, BertForMaskedLM

# small configurations that differ where mistakes hide: odd head sizes, one head, a vocabulary that is no
# multiple of 64, no padding token, three token types, dropout that must be off at evaluation
CONFIGS = {
    "odd_heads": dict(vocab_size=37, block_size=12, n_layer=2, n_head=3, n_embd=15, intermediate_size=22, dropout=0.1),
    "one_head": dict(vocab_size=50, block_size=9, n_layer=1, n_head=1, n_embd=7, dropout=0.0, pad_id=None,
                     type_vocab_size=1),
    "three_types": dict(vocab_size=101, block_size=16, n_layer=3, n_head=2, n_embd=18, intermediate_size=9,
                        dropout=0.0, type_vocab_size=3, pad_id=5),
}
TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}
TORCH_DTYPES = {np.float64: torch.float64, np.float32: torch.float32}


def _hf_model(config, dtype):
    hf_config = transformers.BertConfig(**config.to_hf_config())
    hf_config._attn_implementation = "eager"  # attention written out as the math, the plainest reference
    return transformers.BertForMaskedLM(hf_config).to(TORCH_DTYPES[dtype]).eval()


def _batch(config, B=3, T=None, seed=0, padded=True):
    """Token ids, a right-padding mask (or None), token types and labels with -100 at most positions."""
    rng = np.random.default_rng(seed)
    T = T or config.block_size
    idx = rng.integers(0, config.vocab_size, (B, T))
    lengths = rng.integers(2, T + 1, B) if padded else np.full(B, T)
    lengths[0] = T
    padding = np.arange(T)[None, :] >= lengths[:, None]  # (B, T), True = padding
    if config.pad_id is not None:  # the padding token at the padding only: its row gets no lookup gradient
        idx[idx == config.pad_id] = (config.pad_id + 1) % config.vocab_size
        idx[padding] = config.pad_id
    types = rng.integers(0, config.type_vocab_size, (B, T))
    labels = np.where((rng.random((B, T)) < 0.3) & ~padding, idx, -100)
    labels[:, 0] = idx[:, 0]  # at least one label per row
    return idx, (padding if padded else None), types, labels


def _scramble(model, seed):
    """Every parameter random (LayerNorm gains and biases too), so that no term hides behind a 1 or a 0."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.normal(0.0, 0.3, p.shape)


def _hf_forward(hf, idx, padding, types, labels):
    out = hf(input_ids=torch.from_numpy(idx), token_type_ids=torch.from_numpy(types), labels=torch.from_numpy(labels),
             attention_mask=None if padding is None else torch.from_numpy(~padding).long())  # HF: 1 = real token
    return out.logits, out.loss


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("direction", ["ours_to_hf", "hf_to_ours"])
def test_state_dict_moves_both_ways_with_equal_logits_and_loss(direction, name, dtype):
    config = BertConfig(**CONFIGS[name])
    tt.manual_seed(0)
    torch.manual_seed(0)
    ours, hf = BertForMaskedLM(config).to(dtype).eval(), _hf_model(config, dtype)
    assert list(ours.state_dict()) == list(hf.state_dict())  # tied weights under both names, in HF's order
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in hf.named_parameters()]
    if direction == "ours_to_hf":
        _scramble(ours, 1)
        hf.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    else:
        with torch.no_grad():
            for p in hf.parameters():
                p.normal_(0.0, 0.3)
        ours.load_state_dict({k: v.numpy() for k, v in hf.state_dict().items()})
    idx, padding, types, labels = _batch(config, padded=name != "one_head")

    logits, loss = ours(idx, padding, labels, token_type_ids=types)
    with torch.no_grad():
        hf_logits, hf_loss = _hf_forward(hf, idx, padding, types, labels)
    assert logits.dtype == dtype and loss.dtype == dtype
    np.testing.assert_allclose(logits.data, hf_logits.numpy(), **TOLERANCES[dtype])
    np.testing.assert_allclose(loss.item(), hf_loss.item(), **TOLERANCES[dtype])


@pytest.mark.parametrize("name", ["odd_heads", "three_types"])
def test_gradients_equal_torchs_in_float64(name):
    config = BertConfig(**{**CONFIGS[name], "dropout": 0.0})
    tt.manual_seed(2)
    ours = BertForMaskedLM(config).double()
    _scramble(ours, 3)
    hf = _hf_model(config, np.float64).train()
    hf.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    idx, padding, types, labels = _batch(config, seed=4)

    ours(idx, padding, labels, token_type_ids=types)[1].backward()
    _hf_forward(hf, idx, padding, types, labels)[1].backward()
    hf_params = dict(hf.named_parameters())
    for name_, p in ours.named_parameters():  # the tied word embedding gathers both of its gradients
        np.testing.assert_allclose(p.grad, hf_params[name_].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name_)


def test_padding_changes_no_real_tokens_logits():
    config = BertConfig(**{**CONFIGS["odd_heads"], "dropout": 0.0})
    tt.manual_seed(5)
    model = BertForMaskedLM(config).double()
    _scramble(model, 6)
    rng = np.random.default_rng(7)
    lengths = [12, 5, 1, 9]
    rows = [rng.integers(0, config.vocab_size, n) for n in lengths]
    batch = rng.integers(0, config.vocab_size, (len(rows), 12))  # the padding holds arbitrary tokens
    padding = np.arange(12)[None, :] >= np.array(lengths)[:, None]
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
    with tt.no_grad():
        padded = model(batch, padding)[0].data  # (4, 12, V)
        for i, row in enumerate(rows):
            alone = model(row[None, :])[0].data[0]  # (n, V)
            np.testing.assert_allclose(padded[i, : len(row)], alone, rtol=1e-12, atol=1e-12)


def test_masked_lm_loss_equals_the_full_loss_and_its_gradients():
    config = BertConfig(**{**CONFIGS["three_types"], "dropout": 0.0})
    tt.manual_seed(8)
    model = BertForMaskedLM(config).double()
    _scramble(model, 9)
    idx, padding, types, labels = _batch(config, seed=10)
    _, loss = model(idx, padding, labels, token_type_ids=types)
    loss.backward()
    full = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    fast = model.masked_lm_loss(idx, padding, labels, token_type_ids=types)
    fast.backward()
    assert fast.item() == pytest.approx(loss.item(), rel=1e-12)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, full[name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_gradcheck_through_the_whole_model():
    config = BertConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=6, intermediate_size=5, dropout=0.0)
    tt.manual_seed(11)
    model = BertForMaskedLM(config).double()
    _scramble(model, 12)
    idx, padding, types, labels = _batch(config, B=2, T=5, seed=13)
    params = [p for _, p in model.named_parameters()]
    assert tt.gradcheck(lambda *_: model(idx, padding, labels, token_type_ids=types)[1], params, max_elements=200)


def test_initialised_like_bert_with_tied_decoder_and_optimizer_groups():
    tt.manual_seed(14)
    config = BertConfig(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=64, pad_id=3)
    model = BertForMaskedLM(config)
    emb = model.bert.embeddings.word_embeddings.weight
    head = model.cls.predictions
    assert head.decoder.weight is emb and head.decoder.bias is head.bias
    assert np.all(emb.data[3] == 0) and emb.data[4:].std() == pytest.approx(0.02, rel=0.05)
    layer = model.bert.encoder.layer[1]
    assert layer.intermediate.dense.weight.shape == (256, 64)  # intermediate_size defaults to 4 n_embd
    assert layer.output.dense.weight.data.std() == pytest.approx(0.02, rel=0.05)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert np.all(p.data == 0), name
        elif name.endswith("LayerNorm.weight"):
            assert np.all(p.data == 1), name
    decay, no_decay = model.optimizer_groups(0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_body_alone_has_bertmodels_names_and_gives_the_hidden_states():
    config = BertConfig(**{**CONFIGS["odd_heads"], "dropout": 0.0})
    tt.manual_seed(15)
    model = BertForMaskedLM(config).double()
    body = Bert(config).double()
    hf_body = transformers.BertModel(_hf_model(config, np.float64).config, add_pooling_layer=False)
    assert list(body.state_dict()) == list(hf_body.state_dict())
    body.load_state_dict({k[len("bert."):]: v for k, v in model.state_dict().items() if k.startswith("bert.")})
    idx, padding, _, _ = _batch(config, seed=16)
    h = model.hidden_states(idx, padding)
    assert h.shape == (3, config.block_size, config.n_embd)
    np.testing.assert_array_equal(h.data, body(idx, padding).data)


def test_dropout_acts_in_training_only():
    config = BertConfig(**CONFIGS["odd_heads"])
    tt.manual_seed(17)
    model = BertForMaskedLM(config)
    idx, padding, _, _ = _batch(config, seed=18)
    train_a, train_b = model(idx, padding)[0].data, model(idx, padding)[0].data
    model.eval()
    eval_a, eval_b = model(idx, padding)[0].data, model(idx, padding)[0].data
    assert not np.allclose(train_a, train_b)
    np.testing.assert_array_equal(eval_a, eval_b)


def test_hf_config_round_trip():
    config = BertConfig(**CONFIGS["three_types"])
    hf_config = transformers.BertConfig(**config.to_hf_config())
    assert BertConfig.from_hf_config(hf_config.to_dict()) == config
    assert BertConfig(n_embd=32, n_head=4).intermediate_size == 128


def test_bad_configuration_and_input_give_clear_errors():
    with pytest.raises(ValueError, match="not divisible by n_head"):
        BertConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="pad_id"):
        BertConfig(vocab_size=10, pad_id=10)
    with pytest.raises(ValueError, match="layer_norm_eps"):
        BertConfig(layer_norm_eps=0.0)
    with pytest.raises(ValueError, match="hidden_act"):
        BertConfig.from_hf_config({**BertConfig().to_hf_config(), "hidden_act": "relu"})
    model = BertForMaskedLM(BertConfig(**CONFIGS["one_head"]))
    with pytest.raises(ValueError, match="longer than block_size"):
        model(np.zeros((1, 10), dtype=np.int64))
    with pytest.raises(ValueError, match="key_padding_mask"):
        model(np.zeros((2, 4), dtype=np.int64), np.zeros((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="labels"):
        model(np.zeros((2, 4), dtype=np.int64), labels=np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="integer token ids"):
        model(np.zeros((2, 4)))
