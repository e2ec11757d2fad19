"""SGD, Adam, AdamW and clip_grad_norm_ against torch, step by step, on the same small model."""

import io
import json

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer import optim


class TwoLayer(tt.nn.Module):
    def __init__(self, dtype=np.float64):
        super().__init__()
        self.fc1 = tt.nn.Linear(3, 5, dtype=dtype)
        self.fc2 = tt.nn.Linear(5, 2, dtype=dtype)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())


class TorchTwoLayer(torch.nn.Module):
    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.fc1 = torch.nn.Linear(3, 5, dtype=dtype)
        self.fc2 = torch.nn.Linear(5, 2, dtype=dtype)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def make_pair(dtype=np.float64, seed=0):
    """Our model and a torch twin holding the same weights, plus a fixed batch."""
    tt.manual_seed(seed)
    ours = TwoLayer(dtype)
    theirs = TorchTwoLayer(getattr(torch, np.dtype(dtype).name))
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((8, 3)).astype(dtype), rng.standard_normal((8, 2)).astype(dtype)
    return ours, theirs, x, y


def backward_ours(model, opt, x, y):
    opt.zero_grad()
    loss = ((model(tt.Tensor(x)) - tt.Tensor(y)) ** 2).mean()  # MSE from primitives
    loss.backward()
    return loss.item()


def backward_torch(model, opt, x, y):
    opt.zero_grad()
    loss = ((model(torch.tensor(x)) - torch.tensor(y)) ** 2).mean()
    loss.backward()
    return loss.item()


def assert_same_weights(ours, theirs, rtol=1e-10, atol=1e-12):
    theirs_sd = theirs.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, theirs_sd[name].detach().numpy(), rtol=rtol, atol=atol, err_msg=name)


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.3)),
]


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_twenty_steps_match_torch(name, kwargs):
    ours, theirs, x, y = make_pair()
    opt = getattr(optim, name)(ours.parameters(), **kwargs)
    topt = getattr(torch.optim, name)(theirs.parameters(), **kwargs)
    losses = []
    for step in range(20):
        loss, tloss = backward_ours(ours, opt, x, y), backward_torch(theirs, topt, x, y)
        np.testing.assert_allclose(loss, tloss, rtol=1e-10, err_msg=f"loss at step {step}")
        opt.step()
        topt.step()
        assert_same_weights(ours, theirs)
        losses.append(loss)
    assert losses[-1] < losses[0]


def group_split(model):
    """Matrices in one group, biases in another (the usual no-decay split)."""
    named = list(model.named_parameters())
    return [p for _, p in named if p.ndim >= 2], [p for _, p in named if p.ndim < 2]


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_param_groups_and_changing_lr_match_torch(name):
    ours, theirs, x, y = make_pair()
    extra = dict(momentum=0.9) if name == "SGD" else {}

    def groups(model):
        decay, no_decay = group_split(model)
        return [{"params": decay, "weight_decay": 0.2}, {"params": no_decay, "lr": 0.03, "weight_decay": 0.0}]

    opt = getattr(optim, name)(groups(ours), lr=0.01, **extra)
    topt = getattr(torch.optim, name)(groups(theirs), lr=0.01, **extra)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.03]
    for step in range(12):
        if step == 6:  # a schedule's only trick: write a new lr into the groups
            for g in opt.param_groups + topt.param_groups:
                g["lr"] *= 0.5
        backward_ours(ours, opt, x, y)
        backward_torch(theirs, topt, x, y)
        opt.step()
        topt.step()
        assert_same_weights(ours, theirs)


def through_json_and_npz(state_dict):
    """Write an optimizer state dict as JSON plus an .npz (no pickle anywhere) and read it back."""
    arrays, plain = {}, {}
    for index, state in state_dict["state"].items():
        plain[index] = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
        arrays.update({f"{index}/{k}": v for k, v in state.items() if isinstance(v, np.ndarray)})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    loaded = json.loads(json.dumps({"state": plain, "param_groups": state_dict["param_groups"]}))
    with np.load(buffer, allow_pickle=False) as npz:
        for key in npz.files:
            index, k = key.split("/")
            loaded["state"][index][k] = npz[key]
    return loaded


@pytest.mark.parametrize(
    "name, kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01)), ("AdamW", dict(lr=0.01))]
)
def test_state_dict_round_trip_resumes_exactly(name, kwargs):
    model, _, x, y = make_pair()
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    for _ in range(20):
        backward_ours(model, opt, x, y)
        opt.step()
    uninterrupted = {k: v.copy() for k, v in model.state_dict().items()}

    first, _, x, y = make_pair()
    opt = getattr(optim, name)(first.parameters(), **kwargs)
    for _ in range(10):
        backward_ours(first, opt, x, y)
        opt.step()
    saved_model = {k: v.copy() for k, v in first.state_dict().items()}
    saved_opt = through_json_and_npz(opt.state_dict())

    resumed, _, _, _ = make_pair(seed=1)  # other weights, fresh optimizer: everything comes from the save
    resumed.load_state_dict(saved_model)
    opt = getattr(optim, name)(resumed.parameters(), lr=123.0)
    opt.load_state_dict(saved_opt)
    assert opt.param_groups[0]["lr"] == kwargs["lr"]
    for _ in range(10):
        backward_ours(resumed, opt, x, y)
        opt.step()
    for key, value in resumed.state_dict().items():
        np.testing.assert_array_equal(value, uninterrupted[key], err_msg=key)


def test_state_dict_layout_and_snapshot():
    model, _, x, y = make_pair()
    opt = optim.AdamW(group_split(model)[0], lr=0.01)
    opt.add_param_group({"params": group_split(model)[1], "weight_decay": 0.0})
    backward_ours(model, opt, x, y)
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1]["weight_decay"] == 0.0 and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert set(sd["state"]) == {0, 1, 2, 3} and sd["state"][0]["step"] == 1
    assert sd["state"][0]["exp_avg"].shape == model.fc1.weight.shape
    before = sd["state"][0]["exp_avg"].copy()
    backward_ours(model, opt, x, y)
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], before)  # a copy, not a view of live state


def test_float32_stays_float32_and_matches_torch():
    ours, theirs, x, y = make_pair(np.float32)
    opt = optim.AdamW(ours.parameters(), lr=0.01)
    topt = torch.optim.AdamW(theirs.parameters(), lr=0.01)
    for _ in range(5):
        backward_ours(ours, opt, x, y)
        backward_torch(theirs, topt, x, y)
        opt.step()
        topt.step()
    assert_same_weights(ours, theirs, rtol=1e-5, atol=1e-6)
    for p in ours.parameters():
        assert p.dtype == np.float32
        assert opt.state[p]["exp_avg"].dtype == np.float32 and opt.state[p]["exp_avg_sq"].dtype == np.float32


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda ps: optim.Adam(ps, weight_decay=0.1), lambda ps: optim.AdamW(ps)])
def test_parameters_without_grad_are_skipped(make):
    a = tt.nn.Parameter(np.ones(3))
    b = tt.nn.Parameter(np.ones(3))
    opt = make([a, b])
    (a * a).sum().backward()
    opt.step()
    assert not np.allclose(a.data, 1.0)
    np.testing.assert_array_equal(b.data, np.ones(3))
    assert a in opt.state and b not in opt.state


def test_zero_grad_and_closure():
    model, _, x, y = make_pair()
    opt = optim.SGD(model.parameters(), lr=0.1)
    backward_ours(model, opt, x, y)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    loss = opt.step(lambda: backward_ours(model, opt, x, y))
    assert isinstance(loss, float) and all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda ps: optim.SGD(ps, lr=-0.1), "lr"),
        (lambda ps: optim.SGD(ps, momentum=-0.5), "momentum"),
        (lambda ps: optim.SGD(ps, nesterov=True), "nesterov"),
        (lambda ps: optim.Adam(ps, lr=-1e-3), "lr"),
        (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), "betas[0]"),
        (lambda ps: optim.AdamW(ps, betas=(0.9, -0.1)), "betas[1]"),
        (lambda ps: optim.AdamW(ps, eps=-1.0), "eps"),
        (lambda ps: optim.AdamW(ps, weight_decay=-0.1), "weight_decay"),
        (lambda ps: optim.Adam([{"params": ps, "lr": -2.0}]), "lr"),
        (lambda ps: optim.Adam([]), "params"),
        (lambda ps: optim.SGD([ps[0], ps[0]]), "params"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, argument):
    params = [tt.nn.Parameter(np.ones(2))]
    with pytest.raises(ValueError, match=argument.replace("[", r"\[")):
        make(params)


def test_non_tensors_raise_type_error():
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(tt.nn.Parameter(np.ones(2)))
    with pytest.raises(TypeError, match="Tensors"):
        optim.Adam([np.ones(2)])


def test_load_state_dict_checks_groups():
    a, b = tt.nn.Parameter(np.ones(2)), tt.nn.Parameter(np.ones(2))
    sd = optim.Adam([a, b]).state_dict()
    with pytest.raises(ValueError, match="groups"):
        optim.Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameters"):
        optim.Adam([a]).load_state_dict(sd)


# ------------------------------------------------------------------ clipping
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, float("inf")])
@pytest.mark.parametrize("max_norm", [0.05, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs, x, y = make_pair()
    backward_ours(ours, optim.SGD(ours.parameters()), x, y)
    backward_torch(theirs, torch.optim.SGD(theirs.parameters()), x, y)
    total = optim.clip_grad_norm_(ours.parameters(), max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm, norm_type)
    np.testing.assert_allclose(float(total), ttotal.item(), rtol=1e-12)
    clipped = float(total) > max_norm
    assert clipped == (max_norm == 0.05)
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12, atol=1e-15, err_msg=name)
    after = optim.clip_grad_norm_(ours.parameters(), max_norm, norm_type)
    np.testing.assert_allclose(float(after), min(float(total), max_norm), rtol=1e-5)


def test_clip_grad_norm_float32_single_tensor_and_missing_grads():
    p = tt.nn.Parameter(np.array([3.0, 4.0], dtype=np.float32))
    p.grad = np.array([3.0, 4.0], dtype=np.float32)
    q = tt.nn.Parameter(np.ones(2, dtype=np.float32))  # no grad: skipped
    total = tt.nn.utils.clip_grad_norm_([p, q], 1.0)
    assert total == 5.0 and total.dtype == np.float32 and p.grad.dtype == np.float32
    np.testing.assert_allclose(p.grad, [0.6, 0.8], rtol=1e-5)
    assert q.grad is None
    assert optim.clip_grad_norm_(p, 10.0) == pytest.approx(1.0, rel=1e-6)  # 5 * 1 / (5 + 1e-6)
    assert optim.clip_grad_norm_([q], 1.0) == 0.0
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm_(p, -1.0)
    p.grad[0] = np.inf
    with pytest.raises(RuntimeError, match="error_if_nonfinite"):
        optim.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
