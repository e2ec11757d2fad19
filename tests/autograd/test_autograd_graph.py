"""The Tensor API and the graph: reuse, diamonds, a 100,000-op chain, no_grad, detach, retain_graph."""

import sys
import weakref

import numpy as np
import pytest

import tinytransformer as tt


def leaf(values) -> tt.Tensor:
    return tt.Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# ------------------------------------------------------------------ the API
def test_tensor_attributes():
    data = np.arange(6.0).reshape(2, 3)
    x = tt.Tensor(data, requires_grad=True)
    assert x.data is data and x.numpy() is data  # Tensor wraps, it does not copy
    assert x.shape == (2, 3) and x.ndim == 2 and x.dtype == np.float64 and x.requires_grad
    assert x.grad is None and x.is_leaf
    assert not tt.Tensor(data).requires_grad


def test_tensor_function_copies_and_defaults_to_float32():
    data = np.arange(3.0)
    x = tt.tensor(data)
    data[0] = 100.0
    assert x.data[0] == 0.0
    assert tt.tensor([1.5, 2.0]).dtype == np.float32
    assert tt.tensor(2.5).dtype == np.float32 and tt.tensor(2.5).shape == ()
    assert tt.tensor([1, 2]).dtype == np.int64
    assert tt.tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert tt.tensor(x).data is not x.data


def test_item_backward_zero_grad():
    x = leaf([1.0, 2.0, 3.0])
    y = (x * x).sum()
    assert isinstance(y.item(), float) and y.item() == 14.0
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0, 6.0])
    x.zero_grad()
    assert x.grad is None


def test_backward_with_an_explicit_gradient():
    x = leaf([1.0, 2.0, 3.0])
    y = x * x
    y.backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, -6.0])


def test_backward_of_a_one_element_tensor_needs_no_gradient():
    x = leaf([[2.0]])
    (x * 3).backward()
    np.testing.assert_array_equal(x.grad, [[3.0]])


def test_a_numpy_array_on_the_left_hands_over_to_the_tensor():
    x = leaf([1.0, 2.0])
    y = np.array([3.0, 4.0]) * x + np.array([1.0, 1.0])
    assert isinstance(y, tt.Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_intermediate_gradients_are_kept_only_on_request():
    x = leaf([1.0, 2.0])
    h = x * 3
    k = (x * 2).retain_grad()
    (h * k).sum().backward()
    assert h.grad is None
    np.testing.assert_array_equal(k.grad, h.data)


# ---------------------------------------------------------------- the graph
def test_gradients_accumulate_over_every_use_of_a_tensor():
    x = leaf([2.0, -1.0])
    y = x * x + x * 3 + x  # x is read four times
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data + 4)


def test_diamond_graph():
    x = leaf([0.3, -0.7])
    a = x.exp()  # one node, two consumers
    y = (a * 2 + a.tanh()).sum()
    y.backward()
    e = np.exp(x.data)
    np.testing.assert_allclose(x.grad, 2 * e + (1 - np.tanh(e) ** 2) * e, rtol=1e-14)


def test_a_node_reused_across_many_branches_gets_the_sum():
    x = leaf([1.5])
    branches = [x * k for k in range(1, 11)]
    total = branches[0]
    for b in branches[1:]:
        total = total + b
    total.sum().backward()
    np.testing.assert_array_equal(x.grad, [55.0])


def test_leaf_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data + 3)


def test_a_100000_op_chain_does_not_hit_the_recursion_limit():
    limit = sys.getrecursionlimit()
    x = leaf(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.00001
    y.backward()
    assert sys.getrecursionlimit() == limit  # the engine did not just raise it
    np.testing.assert_allclose(x.grad, 1.00001**100_000, rtol=1e-9)  # about e


def test_only_tensors_that_require_grad_get_gradients():
    x, c = leaf([1.0, 2.0]), tt.Tensor(np.array([5.0, 6.0]))
    (x * c).sum().backward()
    np.testing.assert_array_equal(x.grad, [5.0, 6.0])
    assert c.grad is None
    y = c * 2
    assert not y.requires_grad and y.is_leaf


# --------------------------------------------------- no_grad and detach
def test_no_grad_records_nothing_and_restores_the_mode():
    x = leaf([1.0, 2.0])
    with tt.no_grad():
        y = x * 2
        assert not tt.is_grad_enabled()
        with tt.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf
    with pytest.raises(RuntimeError, match="no_grad"):
        y.sum().backward()
    with pytest.raises(KeyError), tt.no_grad():
        raise KeyError("leaves the block")
    assert tt.is_grad_enabled()


def test_detach_shares_data_and_cuts_the_graph():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert d.data is x.data and not d.requires_grad and d.grad is None
    (d * x).sum().backward()  # d is a constant: dy/dx = d
    np.testing.assert_array_equal(x.grad, x.data)


# ------------------------------------------------------------- retain_graph
def test_a_second_backward_needs_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"already freed.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_pass_that_doubles_the_gradient():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first, rtol=1e-15)
    np.testing.assert_allclose(first, np.exp(x.data) * (x.data + 1), rtol=1e-14)


def test_an_op_on_a_tensor_whose_graph_was_freed_says_so():
    x = leaf([1.0, 2.0])
    h = x.tanh()
    h.sum().backward()
    z = h * 3  # a new op on top of the freed node works forward ...
    with pytest.raises(RuntimeError, match="Tanh was already freed"):
        z.sum().backward()  # ... but backward cannot go through it again


def test_backward_releases_saved_buffers_unless_retained():
    x = leaf([-1.0, 2.0])
    y = x.relu()  # ReLU saves a fresh boolean array: only the graph holds it
    saved = weakref.ref(y._ctx.positive)
    y.sum().backward(retain_graph=True)
    assert saved() is not None
    y.sum().backward()
    assert saved() is None
    np.testing.assert_array_equal(x.grad, [0.0, 2.0])
