"""Generation's inference path (each layer's ``infer``: arrays, no autograd) against the graph path (``forward``).

The two do the same arithmetic in the same order, so the logits must be equal bit for bit and
the generated tokens identical: greedy and sampled, with and without the KV cache, in float32
and float64, on both kernel backends. Also: the inference path makes no Tensor and calls no
autograd Function; the KV cache's growing and preallocated arrays, and its refill once the
context is full; the PyTorch twin's cached generation, which the speed benchmark races against
ours, gives our tokens.
"""

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer.autograd import Function, Tensor
from tinytransformer.generation import generate
from tinytransformer.kernels import causal_attention, use_backend
from tinytransformer.models import GPT, GPTConfig
from tinytransformer.nn import KVCache
from tinytransformer.reference.torch_gpt import TorchGPT

CONFIGS = {
    "gelu": dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8),
    "no-bias-tanh-odd-heads": dict(vocab_size=13, block_size=6, n_layer=2, n_head=3, n_embd=12, bias=False,
                                   activation="gelu_tanh", layer_norm_eps=1e-6),
    "relu-dropout": dict(vocab_size=50, block_size=10, n_layer=1, n_head=4, n_embd=16, dropout=0.1,
                         activation="relu"),
}
# a context longer than one block row of queries: the fused attention's causal block rows (nn/attention.py)
LONG = dict(vocab_size=11, block_size=causal_attention.BLOCK + 36, n_layer=2, n_head=2, n_embd=64)
SAMPLING = {"greedy": dict(temperature=0), "top-k": dict(temperature=0.8, top_k=4), "top-p": dict(top_p=0.7)}


def _model(name, dtype, seed=0):
    """A random GPT with its matrices 20 times GPT-2's initial scale: logits spread over a few units and
    attention far from uniform, so that a path that differed would change the tokens."""
    tt.manual_seed(seed)
    model = GPT(GPTConfig(**CONFIGS[name])).to(dtype)
    for p in model.parameters():
        if p.ndim == 2:
            p.data *= 20
    return model


def _graph_logits(model, idx, caches=None):
    with tt.no_grad():
        return model(idx, caches=caches)[0].data  # (B, 1, V)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CONFIGS)
def test_infer_gives_forwards_logits_bit_for_bit(name, dtype, backend):
    model = _model(name, dtype).eval()
    block = model.config.block_size
    idx = np.random.default_rng(1).integers(0, model.config.vocab_size, (2, block))
    with use_backend(backend):
        logits = model.infer(idx)
        assert isinstance(logits, np.ndarray) and logits.dtype == dtype and logits.shape == (2, 1, model.config.vocab_size)
        np.testing.assert_array_equal(logits, _graph_logits(model, idx))
        # with the cache: a prompt of 3, then two positions at once (a mask across the past), then one at a time
        ours, theirs = ([KVCache() for _ in range(model.config.n_layer)] for _ in range(2))
        for start, stop in [(0, 3), (3, 5)] + [(t, t + 1) for t in range(5, block)]:
            np.testing.assert_array_equal(model.infer(idx[:, start:stop], ours),
                                          _graph_logits(model, idx[:, start:stop], theirs), err_msg=f"{start}:{stop}")
        np.testing.assert_array_equal(ours[-1].k, theirs[-1].k)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("sampling", SAMPLING)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CONFIGS)
def test_generation_is_the_graph_paths_token_for_token(name, dtype, sampling, use_cache):
    model = _model(name, dtype)  # left in training mode: generate switches dropout off and back
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    n = 2 * model.config.block_size  # past block_size: the context is cropped and the cache refilled
    fast = generate(model, prompt, n, seed=7, use_cache=use_cache, **SAMPLING[sampling])
    slow = generate(model, prompt, n, seed=7, use_cache=use_cache, use_graph=True, **SAMPLING[sampling])
    np.testing.assert_array_equal(fast, slow)
    assert fast.shape == (2, 3 + n) and model.training


def test_the_inference_path_makes_no_tensor_and_calls_no_autograd_function(monkeypatch):
    model = _model("gelu", np.float32)
    expected = {c: generate(model, [[1, 2]], 12, seed=0, use_cache=c) for c in (True, False)}

    def forbidden(*args, **kwargs):
        raise AssertionError("the inference path touched autograd")

    monkeypatch.setattr(Tensor, "__init__", forbidden)
    monkeypatch.setattr(Function, "apply", classmethod(forbidden))
    for use_cache, tokens in expected.items():
        np.testing.assert_array_equal(generate(model, [[1, 2]], 12, seed=0, use_cache=use_cache), tokens)
    with pytest.raises(AssertionError, match="touched autograd"):
        generate(model, [[1, 2]], 2, use_graph=True)


def test_infer_records_the_attention_weights_forward_records():
    model = _model("no-bias-tanh-odd-heads", np.float64).eval()
    idx = np.random.default_rng(2).integers(0, model.config.vocab_size, (2, 5))
    layer = model.transformer["h"][1].attn
    layer.record = True
    _graph_logits(model, idx)
    from_forward = layer.last_weights
    model.infer(idx)
    # forward records through the composed ops (attention_weights), infer the fused op's own probabilities
    np.testing.assert_allclose(layer.last_weights, from_forward, rtol=1e-12, atol=1e-15)  # (B, nh, T, T)


def test_kv_cache_grows_in_place_and_holds_what_was_appended():
    rng = np.random.default_rng(3)
    cache, held = KVCache(), []
    assert cache.length == 0 and cache.k is None and cache.v is None
    rooms = []
    for T in [3, 1, 1, 1, 4, 1, 9, 1]:
        new = rng.standard_normal((2, 3, T, 5)).astype(np.float32)
        k, v = cache.append(new, -new)
        held.append(new)
        np.testing.assert_array_equal(k, np.concatenate(held, axis=2))
        np.testing.assert_array_equal(v, -k)
        assert k.dtype == np.float32 and cache.length == k.shape[2] and cache.k.shape == k.shape
        rooms.append(cache._k.shape[2])
    assert rooms == [3, 6, 6, 6, 12, 12, 22, 22], "room doubles when full: appending n positions copies O(n)"


def test_kv_cache_with_a_capacity_has_all_its_room_at_once():
    rng = np.random.default_rng(4)
    cache, held = KVCache(capacity=8), []
    for T in [3, 1, 4]:
        new = rng.standard_normal((1, 2, T, 5))
        k, _ = cache.append(new, new)
        held.append(new)
        np.testing.assert_array_equal(k, np.concatenate(held, axis=2))
        assert cache._k.shape[2] == 8, "written in place: no new array before the capacity is reached"
    k, _ = cache.append(new, new)  # past the capacity: room doubles, as without one
    assert cache.length == 12 and cache._k.shape[2] == 16
    np.testing.assert_array_equal(k, np.concatenate(held + [new], axis=2))
    with pytest.raises(ValueError, match="capacity"):
        KVCache(capacity=0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_an_empty_cache_gives_the_uncached_numbers(backend):
    """Filling a fresh cache is the uncached forward pass (the is_causal flag, not a mask array), bit for bit."""
    tt.manual_seed(5)
    model = GPT(GPTConfig(**{**LONG, "block_size": 40})).eval()
    idx = np.random.default_rng(5).integers(0, model.config.vocab_size, (2, model.config.block_size))
    with use_backend(backend):
        cached = model.infer(idx, [KVCache() for _ in range(model.config.n_layer)])
        np.testing.assert_array_equal(cached, model.infer(idx))
        np.testing.assert_array_equal(cached, _graph_logits(model, idx, [KVCache() for _ in range(model.config.n_layer)]))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_infer_follows_forward_into_the_causal_block_rows(backend):
    """Past one block row of queries the fused op skips the masked half (kernels/causal_attention.py); infer too."""
    tt.manual_seed(6)
    model = GPT(GPTConfig(**LONG)).eval()
    T = model.config.block_size
    assert T > causal_attention.BLOCK
    idx = np.random.default_rng(6).integers(0, model.config.vocab_size, (2, T))
    with use_backend(backend):
        np.testing.assert_array_equal(model.infer(idx), _graph_logits(model, idx))
        ours, theirs = ([KVCache() for _ in range(model.config.n_layer)] for _ in range(2))
        np.testing.assert_array_equal(model.infer(idx, ours), _graph_logits(model, idx, theirs))
        layer = model.transformer["h"][0].attn
        layer.record = True
        np.testing.assert_array_equal(model.infer(idx), _graph_logits(model, idx))  # recording changes nothing
        assert layer.last_weights.shape == (2, 2, T, T)
        np.testing.assert_allclose(layer.last_weights.sum(axis=-1), 1, rtol=1e-5)


def test_a_full_context_runs_again_without_a_cache():
    """Until the context is full each token costs one position; then the window slides and every position
    shifts, so each token runs the last block_size tokens again, without a cache (it would be thrown away)."""
    calls = []

    class Watched(GPT):
        def infer(self, idx, caches=None):
            room = None if caches is None else (caches[0]._k is None or caches[0]._k.shape[2])
            calls.append((idx.shape[1], None if caches is None else caches[0].length, room))
            return super().infer(idx, caches)

    tt.manual_seed(7)
    model = Watched(GPTConfig(**CONFIGS["gelu"]))
    block = model.config.block_size
    prompt = np.array([[1, 2, 3]])
    n = 2 * block
    tokens = generate(model, prompt, n, seed=3)
    assert len(calls) == n
    assert calls[0][:2] == (3, 0)  # the prompt fills the caches
    full = block - 3 + 1  # then one position per token until block_size are held
    assert [c[:2] for c in calls[1:full]] == [(1, length) for length in range(3, block)]
    assert all(room in (True, block) for _, _, room in calls[:full]), "block_size positions of room at once"
    assert calls[full:] == [(block, None, None)] * (n - full)
    np.testing.assert_array_equal(tokens, generate(model, prompt, n, seed=3, use_graph=True))
    np.testing.assert_array_equal(tokens, generate(model, prompt, n, seed=3, use_cache=False))
    calls.clear()
    generate(model, np.arange(block + 2)[None] % 11, 2, seed=3)  # a prompt longer than the context: cropped
    assert calls == [(block, None, None)] * 2


@pytest.mark.parametrize("name", ["gelu", "no-bias-tanh-odd-heads"])
def test_torch_twins_cached_generation_gives_our_tokens(name):
    model = _model(name, np.float64).eval()
    twin = TorchGPT.from_config(model.config).double().load_numpy_state(model.state_dict()).eval()
    prompt = np.array([[1, 2, 3]])
    n = 2 * model.config.block_size
    ours = generate(model, prompt, n, temperature=0)
    for use_cache in (True, False):
        np.testing.assert_array_equal(twin.generate(torch.from_numpy(prompt), n, temperature=0,
                                                    use_cache=use_cache).numpy(), ours)
    torch.manual_seed(0)
    sampled = twin.generate(torch.from_numpy(prompt), n, temperature=0.8, top_k=3)
    assert sampled.shape == (1, 3 + n) and int(sampled.max()) < model.config.vocab_size
