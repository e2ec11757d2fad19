"""time_per_op: every Function's forward and backward is clocked, and put back afterwards."""

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer.autograd.profile import time_per_op
from tinytransformer.nn import Linear
from tinytransformer.nn.linear import LinearFunction


def _clock():
    _clock.now += 1.0  # every reading one "second" later: a call between two readings costs exactly 1
    return _clock.now


def test_forward_and_backward_of_each_op_are_counted_and_restored():
    forward, backward = LinearFunction.__dict__["forward"], LinearFunction.__dict__["backward"]
    layer = Linear(3, 2)
    x = tt.Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    _clock.now = 0.0
    totals = {}
    with time_per_op(totals, clock=_clock):
        (layer(x).tanh().sum()).backward()
        layer(x)  # a second forward of Linear only
    assert totals["LinearFunction.forward"] == 2.0 and totals["LinearFunction.backward"] == 1.0
    assert totals["Tanh.forward"] == 1.0 and totals["Tanh.backward"] == 1.0
    assert LinearFunction.__dict__["forward"] is forward and LinearFunction.__dict__["backward"] is backward


def test_methods_are_restored_when_the_block_raises():
    forward = LinearFunction.__dict__["forward"]
    with pytest.raises(RuntimeError, match="inside"):
        with time_per_op({}):
            raise RuntimeError("inside")
    assert LinearFunction.__dict__["forward"] is forward


def test_an_op_inheriting_a_classmethod_forward_runs_its_own(monkeypatch):
    """Add inherits forward (a classmethod) from _Binary: wrapped, it must still compute a sum, timed as Add."""
    totals = {}
    with time_per_op(totals):
        for _ in range(3):  # whatever order the classes were wrapped in
            out = tt.Tensor(np.ones(2)) + tt.Tensor(np.ones(2)) * 2
    np.testing.assert_array_equal(out.data, [3.0, 3.0])
    assert "Add.forward" in totals and "Mul.forward" in totals and "_Binary.forward" not in totals
