"""LoRA (``nn/lora.py``): the adapted layer's gradients, its equality with the merged layer, a start exactly at
the pretrained model, and training that moves only the adapters (and the head)."""

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer.models import GPT, GPTConfig, SequenceClassifier
from tinytransformer.nn import Linear, LoRALinear, add_lora, merge_lora, merged_state_dict
from tinytransformer.nn.lora import LORA_TARGETS
from tinytransformer.optim import AdamW

CONFIG = GPTConfig(vocab_size=29, block_size=12, n_layer=2, n_head=2, n_embd=12, activation="gelu_tanh")


def _adapted(rank=3, alpha=None, bias=True, dtype=np.float64, seed=0):
    """A LoRALinear 7 -> 5 with a random base and a random (nonzero) B, so every gradient is exercised."""
    tt.manual_seed(seed)
    layer = LoRALinear(Linear(7, 5, bias=bias, dtype=dtype), rank, alpha)
    layer.lora_B.data[...] = np.random.default_rng(seed).standard_normal(layer.lora_B.shape)
    return layer


def _gpt(seed=0, dtype=np.float64):
    tt.manual_seed(seed)
    return GPT(CONFIG).to(dtype).eval()


def _logits(model, idx):
    with tt.no_grad():
        return model.lm_head(model.hidden_states(idx)).data  # (B, T, V)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("alpha", [None, 8.0])
def test_lora_gradcheck(bias, alpha):
    layer = _adapted(alpha=alpha, bias=bias)
    x = tt.Tensor(np.random.default_rng(1).standard_normal((2, 4, 7)), requires_grad=True)
    assert tt.gradcheck(lambda x, a, b: layer(x), [x, layer.lora_A, layer.lora_B])


def test_lora_gradients_equal_torchs_and_the_base_gets_none():
    layer = _adapted(alpha=6.0)
    x_np = np.random.default_rng(2).standard_normal((3, 7))
    x = tt.Tensor(x_np, requires_grad=True)
    layer(x).sum().backward()
    w, b, a, bb = (torch.tensor(p.data, requires_grad=True) for p in (layer.weight, layer.bias, layer.lora_A,
                                                                      layer.lora_B))
    xt = torch.tensor(x_np, requires_grad=True)
    (xt @ w.T + b + 2.0 * (xt @ a.T) @ bb.T).sum().backward()  # alpha / r = 6 / 3
    for ours, theirs in ((x.grad, xt.grad), (layer.lora_A.grad, a.grad), (layer.lora_B.grad, bb.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=1e-12)
    assert layer.weight.grad is None and layer.bias.grad is None
    assert not layer.weight.requires_grad and not layer.bias.requires_grad


@pytest.mark.parametrize("bias", [True, False])
def test_the_adapted_layer_equals_the_merged_one(bias):
    layer = _adapted(alpha=1.5, bias=bias)
    x = np.random.default_rng(3).standard_normal((2, 4, 7))
    merged = layer.merge()
    assert type(merged) is Linear and merged.weight.shape == (5, 7)
    np.testing.assert_allclose(merged(tt.Tensor(x)).data, layer(tt.Tensor(x)).data, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.infer(x), layer(tt.Tensor(x)).data, rtol=0, atol=1e-12)


def test_a_zero_b_gives_exactly_the_pretrained_model():
    base, adapted = _gpt(), _gpt()
    wrapped = add_lora(adapted, rank=4)
    assert len(wrapped) == 4 * CONFIG.n_layer and all(path.endswith(LORA_TARGETS) for path in wrapped)
    idx = np.random.default_rng(4).integers(0, CONFIG.vocab_size, (2, 9))
    np.testing.assert_array_equal(_logits(adapted, idx), _logits(base, idx))  # bit for bit
    np.testing.assert_array_equal(adapted.infer(idx), base.infer(idx))


def test_a_trained_gpt_merges_into_a_plain_gpt_with_the_same_logits():
    model = _gpt()
    add_lora(model, rank=2, alpha=4.0)
    rng = np.random.default_rng(5)
    for p in model.parameters():
        if p.requires_grad:  # the adapters, as if trained
            p.data[...] = 0.3 * rng.standard_normal(p.shape)
    idx = rng.integers(0, CONFIG.vocab_size, (2, 9))
    adapted = _logits(model, idx)
    state = merged_state_dict(model)
    assert not any("lora_" in name for name in state)
    plain = _gpt(seed=1)
    plain.load_state_dict(state)  # loads as a GPT that never had adapters (strict: every key, no extra)
    np.testing.assert_allclose(_logits(plain, idx), adapted, rtol=0, atol=1e-12)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert all(np.array_equal(state[k], v) for k, v in model.state_dict().items())
    np.testing.assert_allclose(_logits(model, idx), adapted, rtol=0, atol=1e-12)


def test_training_moves_only_the_adapters_and_the_head_and_only_they_have_optimizer_state():
    tt.manual_seed(0)
    model = SequenceClassifier(CONFIG, 2, pooling="max").add_lora(rank=2)
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    optimizer = AdamW(model.param_groups(lr=1e-2, weight_decay=0.01))
    rng = np.random.default_rng(6)
    for _ in range(3):
        idx, labels = rng.integers(0, CONFIG.vocab_size, (4, 8)), rng.integers(0, 2, 4)
        model(idx, labels=labels)[1].backward()
        optimizer.step()
        optimizer.zero_grad()
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained == {name for name in before if "lora_" in name or not name.startswith("body.")}
    assert {id(p) for p in optimizer.state} == {id(p) for name, p in model.named_parameters() if name in trained}
    for name, p in model.named_parameters():
        if name in trained:
            assert not np.array_equal(p.data, before[name]), name
        else:
            np.testing.assert_array_equal(p.data, before[name], err_msg=name)  # frozen: bit for bit
            assert p.grad is None, name


def test_bad_ranks_and_layers_are_named():
    with pytest.raises(ValueError, match="rank must be"):
        LoRALinear(Linear(4, 3), 0)
    with pytest.raises(ValueError, match="rank 4 is more than min"):
        LoRALinear(Linear(4, 3), 4)
    with pytest.raises(ValueError, match="alpha must be"):
        LoRALinear(Linear(4, 3), 1, alpha=-1.0)
    with pytest.raises(ValueError, match="base must be a Linear"):
        LoRALinear(GPT(CONFIG), 1)
    with pytest.raises(ValueError, match="has no Linear named"):
        add_lora(Linear(4, 3), 1)
