"""Module: parameter names and order, state dicts in both directions, modes, casting, tied weights.

One small model is written once and built twice, on tinytransformer.nn and on torch.nn, so
that every name our Module produces can be compared with the name PyTorch produces: a nested
ModuleList of Sequentials, a ModuleDict, a persistent and a non-persistent buffer, and an
output layer whose weight is tied to the embedding.
"""

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer import nn


def build(lib, as_buffer):
    """The same model on ``lib`` (tt.nn or torch.nn); ``as_buffer`` makes a buffer of that library."""

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.embed = lib.Embedding(10, 4)
            self.blocks = lib.ModuleList(
                [lib.Sequential(lib.Linear(4, 8), lib.GELU(), lib.Dropout(0.5), lib.Linear(8, 4)) for _ in range(2)]
            )
            self.heads = lib.ModuleDict({"norm": lib.LayerNorm(4), "cls": lib.Linear(4, 3)})
            self.register_buffer("scale", as_buffer(np.linspace(0.5, 1.5, 4, dtype=np.float32)))
            self.register_buffer("cache", as_buffer(np.zeros(2, dtype=np.float32)), persistent=False)
            self.out = lib.Linear(4, 10, bias=False)
            self.out.weight = self.embed.weight  # tied, as GPT ties its embedding and output layer

        def forward(self, ids):
            x = self.embed(ids)
            for block in self.blocks:
                x = x + block(x)
            x = self.heads["norm"](x) * self.scale
            return self.out(x), self.heads["cls"](x)

    return Net()


def ours():
    return build(nn, tt.Tensor)


def theirs():
    return build(torch.nn, torch.from_numpy)


def to_ours(state):
    return {k: v.detach().numpy() for k, v in state.items()}


def to_theirs(state):
    return {k: torch.from_numpy(np.array(v)) for k, v in state.items()}


def test_names_and_order_match_torch():
    a, b = ours(), theirs()
    assert [k for k, _ in a.named_parameters()] == [k for k, _ in b.named_parameters()]
    assert list(a.state_dict()) == list(b.state_dict())
    assert [tuple(v.shape) for v in a.state_dict().values()] == [tuple(v.shape) for v in b.state_dict().values()]
    assert [k for k, _ in a.named_modules()] == [k for k, _ in b.named_modules()]
    assert "cache" not in a.state_dict() and "scale" in a.state_dict()


def test_tied_weights_are_one_parameter_under_two_names():
    model = ours()
    names = [k for k, _ in model.named_parameters()]
    assert "embed.weight" in names and "out.weight" not in names
    assert len(list(model.parameters())) == len(names)
    state = model.state_dict()
    assert state["embed.weight"] is state["out.weight"]
    assert model.num_parameters() == sum(p.numel() for p in theirs().parameters())


def test_load_state_dict_torch_to_ours_and_ours_to_torch():
    torch.manual_seed(0)
    a, b = ours(), theirs()
    a.eval(), b.eval()
    a.load_state_dict(to_ours(b.state_dict()))
    ids = np.array([[1, 2, 3], [4, 5, 9]])
    for y, ty in zip(a(ids), b(torch.from_numpy(ids))):
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-5, atol=1e-6)

    tt.manual_seed(1)
    c = ours()
    b.load_state_dict(to_theirs(c.state_dict()))
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), c.state_dict()[k], err_msg=k)


def test_load_state_dict_strictness_and_shape_errors():
    model = ours()
    state = dict(model.state_dict())
    del state["heads.cls.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['heads.cls.bias'\], unexpected keys \[\]"):
        model.load_state_dict(state)
    state["heads.cls.bias"], state["extra.weight"] = np.ones(3), np.ones(2)
    with pytest.raises(KeyError, match=r"missing keys \[\], unexpected keys \['extra.weight'\]"):
        model.load_state_dict(state)
    assert model.load_state_dict(state, strict=False) == ([], ["extra.weight"])
    np.testing.assert_array_equal(model.heads["cls"].bias.data, 1)

    before = model.embed.weight.data.copy()
    state = {k: np.zeros_like(v) for k, v in model.state_dict().items()}
    state["heads.cls.weight"] = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"heads.cls.weight has shape \(2, 4\) in the state dict but \(3, 4\) in the model"):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model.embed.weight.data, before)  # nothing was half-loaded


def test_train_and_eval_reach_every_submodule():
    model = ours()
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    ids = np.array([[1, 2]])
    np.testing.assert_array_equal(model(ids)[0].data, model(ids)[0].data)  # dropout is off
    model.train()
    assert all(m.training for m in model.modules())


def test_zero_grad():
    model = ours()
    logits, classes = model(np.array([[1, 2, 3]]))
    (logits.sum() + classes.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_double_and_float_cast_parameters_and_buffers_in_place():
    model = ours()
    weight = model.embed.weight
    model.double()
    assert all(v.dtype == np.float64 for v in model.state_dict().values())
    assert model.cache.dtype == np.float64 and model.out.weight is weight is model.embed.weight
    logits, _ = model(np.array([[1, 2]]))
    assert logits.dtype == np.float64
    model.float()
    assert all(v.dtype == np.float32 for v in model.state_dict().values())


def test_buffers_assigned_later_stay_tensors_and_del_unregisters():
    model = ours()
    model.scale = np.ones(4)  # an assigned array becomes a Tensor, and stays in the state dict
    assert isinstance(model.scale, tt.Tensor) and model.state_dict()["scale"].shape == (4,)
    del model.heads["cls"].bias
    assert "heads.cls.bias" not in model.state_dict()


def test_repr_shows_the_tree():
    text = repr(ours())
    assert "(blocks): ModuleList(\n    (0): Sequential(\n      (0): Linear(in_features=4, out_features=8, bias=True)" in text
    assert "(norm): LayerNorm((4,), eps=1e-05, elementwise_affine=True)" in text
    assert "(embed): Embedding(10, 4)" in text


def test_skip_init_builds_without_drawing_and_leaves_the_random_stream_alone():
    from tinytransformer.models import GPT, GPTConfig
    from tinytransformer.rng import get_rng_state

    tt.manual_seed(0)
    drawn = nn.Linear(3, 4)  # outside skip_init: PyTorch's U(-1/sqrt(in), 1/sqrt(in)), from the library's stream
    reference = np.random.default_rng(0)
    bound = 1 / np.sqrt(3)
    np.testing.assert_array_equal(drawn.weight.data, reference.uniform(-bound, bound, (4, 3)).astype(np.float32))
    np.testing.assert_array_equal(drawn.bias.data, reference.uniform(-bound, bound, 4).astype(np.float32))

    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
    tt.manual_seed(1)
    source = GPT(config)
    state = get_rng_state()
    with nn.skip_init():
        model = GPT(config)
        with nn.skip_init():  # nested: the outer one still holds afterwards
            pass
        assert nn.module.skipping_init()
    assert get_rng_state() == state, "building under skip_init draws nothing"
    assert not nn.module.skipping_init()
    np.testing.assert_array_equal(model.transformer["h"][0].ln_1.weight.data, 1)  # LayerNorm's ones are still written
    model.load_state_dict(source.state_dict())
    idx = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(model.infer(idx), source.infer(idx))
    with pytest.raises(RuntimeError), nn.skip_init():
        raise RuntimeError
    assert not nn.module.skipping_init(), "an error inside leaves skip_init off"
