"""The guard against in-place edits of saved arrays (PyTorch's version counter), and ``bool``/``len`` of a
tensor as PyTorch has them: a silently wrong gradient or truth value becomes an error that names the op."""

import re

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer import nn, optim
from tinytransformer.autograd.function import fingerprint
from tinytransformer.models import GPT, GPTConfig


def leaf(*values):
    return tt.Tensor(np.array(values, dtype=np.float64), requires_grad=True)


def _edit_after_mul():
    x = leaf(1.0, 2.0, 3.0)
    y = (x * x).sum()
    x.data[0] = 5.0  # what x * x saved is now wrong
    y.backward()


def _add_in_place_after_mul():
    x = leaf(1.0, 2.0, 3.0)
    y = (x * x).sum()
    x.data += 1.0  # Tensor.data's setter sees the same array come back: one more version
    y.backward()


def _doubling_that_xor_misses():
    x = leaf(1.5, 1.25)  # same binade, an even count: doubling flips the same exponent bits twice
    y = (x * x).sum()
    x.data *= 2
    y.backward()


def _edit_of_an_output():
    x = leaf(1.0, 2.0, 3.0)
    e = x.exp()
    s = e.sum()
    e.data[1] = 0.0  # Exp's backward reads its output
    s.backward()


def _edit_through_detach():
    x = leaf(1.0, 2.0)
    y = (x * x).sum()
    x.detach().data[:] = 0.0  # detach shares the array
    y.backward()


def _edit_of_the_base_of_a_view():
    x = leaf(1.0, 2.0, 3.0, 4.0)
    w = leaf(0.5, -0.5)
    y = (x.reshape(2, 2) @ w).sum()  # MatMul saved a view of x's array
    x.data[3] = 9.0
    y.backward()


def _edit_of_a_weight():
    layer = nn.Linear(3, 2)
    loss = layer(tt.ones(4, 3)).sum()
    layer.weight.data[0, 0] += 1.0
    loss.backward()


def _step_between_two_backwards():
    layer = nn.Linear(3, 2)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    loss = layer(tt.ones(4, 3)).sum()
    loss.backward(retain_graph=True)
    opt.step()  # changes the weight the graph saved
    loss.backward()


def _gpt_weight_edit():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    idx = np.arange(8)[None] % 11
    _, loss = model(idx, idx)
    model.transformer["h"][0].mlp.c_fc.weight.data[...] = 0.0
    loss.backward()


EDITS = [
    ("element-of-a-leaf", _edit_after_mul, "that Mul saved", "its values differ"),
    ("augmented-assignment", _add_in_place_after_mul, "that Mul saved", "its version is 1, the graph saved version 0"),
    ("doubling", _doubling_that_xor_misses, "that Mul saved", "its version is 1"),
    ("output", _edit_of_an_output, "that Exp saved", "its values differ"),
    ("through-detach", _edit_through_detach, "that Mul saved", "its values differ"),
    ("base-of-a-view", _edit_of_the_base_of_a_view, "that MatMul saved", "its values differ"),
    ("layer-weight", _edit_of_a_weight, "that LinearFunction saved", "its values differ"),
    ("optimizer-step", _step_between_two_backwards, "that LinearFunction saved", "its values differ"),
    ("gpt-weight", _gpt_weight_edit, "that LinearGELUFunction saved", "its values differ"),  # c_fc and its GELU
]


@pytest.mark.parametrize("edit, op, how", [case[1:] for case in EDITS], ids=[case[0] for case in EDITS])
def test_an_in_place_edit_of_a_saved_array_fails_at_backward_naming_the_op(edit, op, how):
    with pytest.raises(RuntimeError, match=f"backward: .*{re.escape(op)} .*changed in place.*{re.escape(how)}"):
        edit()


@pytest.mark.parametrize("value, message", [
    (tt.tensor([1.0, 2.0]) > 1, "Boolean value of Tensor with more than one value is ambiguous"),
    (tt.zeros(0), "Boolean value of Tensor with no values is ambiguous"),
])
def test_bool_of_several_values_is_ambiguous(value, message):
    with pytest.raises(RuntimeError, match=message):
        bool(value)


def test_bool_and_len_as_pytorch():
    assert bool(tt.tensor([2.0]) > 1) and not bool(tt.tensor(0.0)) and bool(tt.tensor([[3]]))
    assert len(tt.zeros(3, 2)) == 3
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(tt.tensor(1.0))


def test_edits_the_gradient_does_not_read_are_fine():
    x = leaf(1.0, 2.0, 3.0)
    y = (x + 1.0).sum()  # Add keeps only shapes
    x.data[0] = 5.0
    y.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0, 1.0])
    x = leaf(1.0, 2.0)
    y = x.tanh().sum()  # Tanh keeps its output, not x
    x.data[:] = 0.0
    y.backward()
    np.testing.assert_allclose(x.grad, 1 - np.tanh([1.0, 2.0]) ** 2)
    x = leaf(1.0, 2.0)
    y = (x * x).sum()
    x.data[...] = x.data.copy()  # the same values written back
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_training_steps_update_weights_in_place_as_before():
    tt.manual_seed(0)
    layer = nn.Linear(3, 2)
    opt = optim.AdamW(layer.parameters(), lr=0.1)
    x = tt.Tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    for _ in range(3):  # forward, backward, then the in-place step: the next forward saves the new values
        loss = (layer(x) * layer(x)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert layer.weight._version == 0  # the optimizer writes into the array; the next graph sees new values


def test_version_counts_augmented_assignments_only():
    x = tt.Tensor(np.zeros(3))
    x.data += 1
    x.data -= 1
    assert x._version == 2
    x.data = np.ones(3)  # a new array: nothing saved before can change
    assert x._version == 2


def test_fingerprint_sees_any_single_element_and_views():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 7)).astype(np.float32)
    before = fingerprint(a)
    for i, j in [(0, 0), (4, 6), (2, 3)]:
        b = a.copy()
        b[i, j] = np.nextafter(b[i, j], np.float32(np.inf))  # the smallest change a float32 can make
        assert fingerprint(b) != before
    assert fingerprint(a.T) == before and fingerprint(a[:, ::2]) != before  # a strided view, no copy
    assert fingerprint(np.array([True, False])) is not None and fingerprint(np.array([object()])) is None


def test_gradcheck_still_passes_with_the_guard():
    x = tt.Tensor(np.random.default_rng(1).standard_normal((3, 4)), requires_grad=True)
    w = tt.Tensor(np.random.default_rng(2).standard_normal((4, 2)), requires_grad=True)
    assert tt.gradcheck(lambda a, b: ((a @ b).tanh() * a.sum()).exp(), [x, w])
