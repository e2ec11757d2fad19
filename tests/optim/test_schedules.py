"""LambdaLR and the warmup-cosine schedule against torch and against values worked out by hand."""

import functools
import json
import math

import numpy as np
import pytest
import torch

import tinytransformer as tt
from tinytransformer import optim
from tinytransformer.optim.lr_scheduler import LambdaLR, WarmupCosineLR, cosine_with_warmup


def two_group_pair(lr=0.1):
    """Our SGD and torch's, each with two single-parameter groups (lr and 3*lr)."""
    ours = [tt.nn.Parameter(np.ones(2)), tt.nn.Parameter(np.ones(3))]
    theirs = [torch.ones(2, dtype=torch.float64, requires_grad=True), torch.ones(3, dtype=torch.float64, requires_grad=True)]
    opt = optim.SGD([{"params": [ours[0]]}, {"params": [ours[1]], "lr": 3 * lr}], lr=lr)
    topt = torch.optim.SGD([{"params": [theirs[0]]}, {"params": [theirs[1]], "lr": 3 * lr}], lr=lr)
    return opt, topt


@pytest.mark.parametrize(
    "lr_lambda",
    [lambda t: 0.95**t, [lambda t: 1 / (1 + t), lambda t: 0.5 if t % 3 else 1.0]],
    ids=["one-lambda", "lambda-per-group"],
)
def test_lambda_lr_matches_torch(lr_lambda):
    opt, topt = two_group_pair()
    sched, tsched = LambdaLR(opt, lr_lambda), torch.optim.lr_scheduler.LambdaLR(topt, lr_lambda)
    for _ in range(15):
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-15)
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    assert [g["initial_lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.3], rel=1e-15)


def test_cosine_with_warmup_by_hand():
    f = functools.partial(cosine_with_warmup, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    expected = {
        0: 0.25, 1: 0.5, 3: 1.0,  # linear warmup, reaching 1 at the last warmup step
        4: 1.0,  # the cosine starts at the top
        9: 0.1 + 0.9 * 0.5,  # halfway down: cos(pi/2) = 0
        14: 0.1, 15: 0.1, 1000: 0.1,  # the floor, then constant
    }
    for step, value in expected.items():
        assert f(step) == pytest.approx(value, abs=1e-15), step
    assert f(6) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.2)))
    values = [f(t) for t in range(4, 15)]
    assert all(a > b for a, b in zip(values, values[1:]))  # strictly decreasing through the decay
    assert cosine_with_warmup(0, 0, 10) == 1.0  # no warmup: start at the full lr


def test_warmup_cosine_matches_torch_lambda_lr_and_trains_identically():
    ours = tt.nn.Parameter(np.array([1.0, -2.0, 0.5]))
    theirs = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    opt, topt = optim.SGD([ours], lr=0.2, momentum=0.9), torch.optim.SGD([theirs], lr=0.2, momentum=0.9)
    sched = WarmupCosineLR(opt, warmup_steps=5, total_steps=20, min_lr_ratio=0.05)
    schedule = functools.partial(cosine_with_warmup, warmup_steps=5, total_steps=20, min_lr_ratio=0.05)
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, schedule)
    for _ in range(25):
        opt.zero_grad()
        topt.zero_grad()
        (ours * ours).sum().backward()
        (theirs**2).sum().backward()
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-15)
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12)
    assert sched.get_last_lr() == pytest.approx([0.2 * 0.05])


def test_scheduler_state_dict_round_trip():
    def build():
        p = tt.nn.Parameter(np.ones(2))
        opt = optim.AdamW([p], lr=0.01)
        return opt, WarmupCosineLR(opt, warmup_steps=3, total_steps=12)

    opt, sched = build()
    for _ in range(7):
        sched.step()
    expected = [sched.get_last_lr()]
    for _ in range(3):
        sched.step()
        expected.append(sched.get_last_lr())

    opt, sched = build()
    for _ in range(7):
        sched.step()
    saved_opt = json.loads(json.dumps(opt.state_dict()))
    saved_sched = json.loads(json.dumps(sched.state_dict()))
    assert set(saved_sched) == {"last_epoch", "base_lrs", "_last_lr"} and saved_sched["last_epoch"] == 7

    opt, sched = build()
    opt.load_state_dict(saved_opt)
    sched.load_state_dict(saved_sched)
    resumed = [sched.get_last_lr()]
    for _ in range(3):
        sched.step()
        resumed.append(sched.get_last_lr())
    assert resumed == expected
    assert opt.param_groups[0]["lr"] == expected[-1][0]


def test_resuming_without_initial_lr_and_bad_arguments():
    opt = optim.SGD([tt.nn.Parameter(np.ones(2))], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        LambdaLR(opt, lambda t: 1.0, last_epoch=5)
    with pytest.raises(ValueError, match="lr_lambda"):
        LambdaLR(opt, [lambda t: 1.0, lambda t: 2.0])
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupCosineLR(opt, warmup_steps=-1, total_steps=10)
    with pytest.raises(ValueError, match="total_steps"):
        WarmupCosineLR(opt, warmup_steps=10, total_steps=5)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        WarmupCosineLR(opt, warmup_steps=1, total_steps=5, min_lr_ratio=1.5)
