"""GPT: interchange with its PyTorch twin, gradients, the KV cache, generation."""

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer.generation import generate, sample_next_token
from tinytransformer.models import GPT, GPTConfig
from tinytransformer.reference.torch_gpt import TorchGPT

TINY = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.0, bias=True)


def _batch(config, B=3, T=None, seed=0):
    rng = np.random.default_rng(seed)
    T = T or config.block_size
    idx = rng.integers(0, config.vocab_size, (B, T))
    return idx, np.roll(idx, -1, axis=1)


@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_loads_into_torch_twin_with_same_logits_loss_and_grads(bias):
    tt.manual_seed(0)
    config = GPTConfig(**{**TINY, "bias": bias})
    ours = GPT(config).double()
    twin = TorchGPT.from_config(config).double().load_numpy_state(ours.state_dict())
    assert set(twin.state_dict()) == set(ours.state_dict())
    idx, targets = _batch(config)

    logits, loss = ours(idx, targets)
    loss.backward()
    t_logits, t_loss = twin(torch.from_numpy(idx), torch.from_numpy(targets))
    t_loss.backward()

    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-12)
    t_params = dict(twin.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, t_params[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    assert len(t_params) == len(list(ours.parameters()))  # the tied weight is listed once by both


def test_torch_twin_state_dict_loads_into_ours():
    torch.manual_seed(0)
    config = GPTConfig(**TINY)
    twin = TorchGPT.from_config(config).double()
    ours = GPT(config).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    idx, targets = _batch(config, seed=1)
    _, loss = ours(idx, targets)
    _, t_loss = twin(torch.from_numpy(idx), torch.from_numpy(targets))
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-12)


def test_float32_matches_torch_float32():
    tt.manual_seed(1)
    config = GPTConfig(**TINY)
    ours = GPT(config)
    twin = TorchGPT.from_config(config).load_numpy_state(ours.state_dict())
    idx, targets = _batch(config, seed=2)
    logits, loss = ours(idx, targets)
    assert logits.dtype == np.float32 and loss.dtype == np.float32
    t_logits, t_loss = twin(torch.from_numpy(idx), torch.from_numpy(targets))
    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-5)


def test_gradcheck_through_the_whole_model():
    tt.manual_seed(2)
    config = GPTConfig(**{**TINY, "n_layer": 1})
    model = GPT(config).double()
    idx, targets = _batch(config, B=2, T=5)
    params = [p for _, p in model.named_parameters()]
    # element by element for the small tensors, random directions for the embedding matrices
    assert tt.gradcheck(lambda *_: model(idx, targets)[1], params, max_elements=200)


def test_weights_are_tied_and_initialised_gpt2_style():
    tt.manual_seed(3)
    config = GPTConfig(vocab_size=50, block_size=16, n_layer=4, n_head=2, n_embd=64)
    model = GPT(config)
    assert model.lm_head.weight is model.transformer["wte"].weight
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names and "lm_head.weight" in model.state_dict()
    c_proj = model.transformer["h"][0].attn.c_proj.weight.data
    c_fc = model.transformer["h"][0].mlp.c_fc.weight.data
    assert c_fc.std() == pytest.approx(0.02, rel=0.1)
    assert c_proj.std() == pytest.approx(0.02 / np.sqrt(2 * config.n_layer), rel=0.1)
    decay, no_decay = model.optimizer_groups(0.1)
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)


def test_kv_cache_gives_the_same_logits_as_recomputing():
    tt.manual_seed(4)
    config = GPTConfig(**TINY)
    model = GPT(config).double().eval()
    idx, _ = _batch(config, B=2, T=config.block_size)
    with tt.no_grad():
        caches = [tt.nn.KVCache() for _ in range(config.n_layer)]
        cached = [model(idx[:, :3], caches=caches)[0].data[:, -1]]
        for t in range(3, config.block_size):
            cached.append(model(idx[:, t : t + 1], caches=caches)[0].data[:, -1])
        full = [model(idx[:, : t + 1])[0].data[:, -1] for t in range(2, config.block_size)]
    np.testing.assert_allclose(np.stack(cached), np.stack(full), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=0.8, top_k=4), dict(top_p=0.7)])
def test_cached_and_uncached_generation_give_identical_tokens(sampling):
    tt.manual_seed(5)
    config = GPTConfig(**TINY)
    model = GPT(config).double()
    prompt = np.array([[1, 2, 3]])
    n = 2 * config.block_size  # runs past block_size, so the context is cropped on the way
    with_cache = generate(model, prompt, n, seed=7, use_cache=True, **sampling)
    without = generate(model, prompt, n, seed=7, use_cache=False, **sampling)
    np.testing.assert_array_equal(with_cache, without)
    assert with_cache.shape == (1, 3 + n)


def test_generation_is_deterministic_under_a_seed_and_crops_long_prompts():
    tt.manual_seed(6)
    config = GPTConfig(**TINY)
    model = GPT(config)
    long_prompt = np.arange(3 * config.block_size) % config.vocab_size
    a = generate(model, long_prompt, 10, temperature=1.0, seed=3)
    b = generate(model, long_prompt, 10, temperature=1.0, seed=3)
    c = generate(model, long_prompt, 10, temperature=1.0, seed=4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 3 * config.block_size + 10)
    assert not np.array_equal(a, c)


def test_sampling_strategies_respect_their_supports():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 2000))
    assert set(sample_next_token(logits, temperature=0)) == {0}
    assert set(sample_next_token(logits, top_k=2, rng=rng)) == {0, 1}
    assert set(sample_next_token(logits, top_p=0.75, rng=rng)) == {0, 1}  # 0.5 + 0.3 covers 0.75
    counts = np.bincount(sample_next_token(logits, rng=rng), minlength=4) / 2000
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.04)
    with pytest.raises(ValueError, match="top_p"):
        sample_next_token(logits, top_p=1.5)


def test_bad_configuration_and_input_give_clear_errors():
    with pytest.raises(ValueError, match="not divisible by n_head"):
        GPTConfig(n_embd=10, n_head=3)
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(ValueError, match="longer than block_size"):
        model(np.zeros((1, TINY["block_size"] + 1), dtype=np.int64))
    with pytest.raises(ValueError, match="targets"):
        model(np.zeros((2, 4), dtype=np.int64), np.zeros((2, 3), dtype=np.int64))
