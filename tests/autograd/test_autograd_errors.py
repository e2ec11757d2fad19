"""Bad input raises the documented error type, with a message naming the op and the shapes at fault."""

import re

import numpy as np
import pytest

import tinytransformer as tt


def t(*shape) -> tt.Tensor:
    return tt.Tensor(np.ones(shape), requires_grad=True)


def escaped(*parts) -> str:
    """A regex that matches the parts in order, anything in between."""
    return ".*".join(re.escape(str(p)) for p in parts)


@pytest.mark.parametrize("name, op", [("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
                                      ("div", lambda a, b: a / b), ("pow", lambda a, b: a**b)])
def test_binary_ops_name_both_shapes(name, op):
    with pytest.raises(ValueError, match=escaped(name, (2, 3), (4,))):
        op(t(2, 3), t(4))


@pytest.mark.parametrize(
    "a, b, message",
    [((4, 3), (4, 5), ("matmul", (4, 3), (4, 5), "3 != 4")),
     ((3,), (2,), ("matmul", (3,), (2,))),
     ((2, 3, 4), (3, 4, 5), ("matmul", (2, 3, 4), (3, 4, 5))),
     ((), (3,), ("matmul", (), (3,)))],
)
def test_matmul_names_both_shapes(a, b, message):
    with pytest.raises(ValueError, match=escaped(*message)):
        t(*a) @ t(*b)


@pytest.mark.parametrize(
    "call, error, message",
    [(lambda: t(2, 3).reshape(4, 2), ValueError, ("reshape", (2, 3), (4, 2))),
     (lambda: t(2, 3).permute(0, 0), ValueError, ("permute", (0, 0), (2, 3))),
     (lambda: t(2, 3).permute(0, 1, 2), ValueError, ("permute", (0, 1, 2), (2, 3))),
     (lambda: t(2, 3, 4).permute(0, 1, 5), ValueError, ("permute", (0, 1, 5), (2, 3, 4))),
     (lambda: t(2, 3).transpose(0, 2), ValueError, ("transpose", (2, 3))),
     (lambda: t(2, 3)[5], IndexError, ("getitem", (2, 3))),
     (lambda: t(2, 3)[np.array([0, 3])], IndexError, ("getitem", (2, 3))),
     (lambda: t(2, 3)[:, :, 0], IndexError, ("getitem", (2, 3))),
     (lambda: tt.concatenate([t(2, 3), t(3, 2)], axis=0), ValueError, ("concatenate", (2, 3), (3, 2))),
     (lambda: tt.concatenate([], axis=0), ValueError, ("concatenate",)),
     (lambda: tt.stack([t(2, 3), t(2, 4)]), ValueError, ("stack", (2, 3), (2, 4))),
     (lambda: tt.stack([t(2, 3), t(2, 3)], axis=3), ValueError, ("stack", "axis 3")),
     (lambda: t(2, 5).split([2, 2], axis=1), ValueError, ("split", [2, 2], "length 5")),
     (lambda: t(2, 5).split(0), ValueError, ("split", "positive")),
     (lambda: tt.where(np.ones((2, 2), dtype=bool), t(3,), t(3,)), ValueError, ("where", (2, 2), (3,))),
     (lambda: t(2, 3).masked_fill(np.ones((3, 3), dtype=bool), 0.0), ValueError, ("masked_fill", (3, 3), (2, 3))),
     (lambda: t(2, 3).masked_fill(np.ones((2, 3)), 0.0), TypeError, ("masked_fill", "boolean", "float64")),
     (lambda: t(2, 3).squeeze(0), ValueError, ("squeeze", (2, 3))),
     (lambda: t(2, 3).sum(axis=2), ValueError, ("sum", "axis 2", "2 dimensions")),
     (lambda: t(2, 3).mean(axis=(0, -3)), ValueError, ("mean", "axis -3")),
     (lambda: t(2, 3).max(axis=4), ValueError, ("max", "axis 4")),
     (lambda: tt.Tensor(np.ones((0, 3))).max(), ValueError, ("max", "empty", (0, 3))),
     (lambda: t(2, 1).var(axis=1), ValueError, ("var", "1 elements", "correction=1")),
     (lambda: t(2, 3).softmax(axis=2), ValueError, ("softmax", "axis 2")),
     (lambda: t(2, 3).log_softmax(axis=-3), ValueError, ("log_softmax", "axis -3")),
     (lambda: t(2, 3).logsumexp(axis=5), ValueError, ("logsumexp", "axis 5")),
     (lambda: t(2, 3).gelu(approximate="fast"), ValueError, ("gelu", "'fast'")),
     (lambda: tt.Tensor(np.arange(3), requires_grad=True), TypeError, ("floating-point", "int64")),
     (lambda: t(2, 3).item(), ValueError, ("item", (2, 3)))],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_bad_input_gets_an_actionable_error(call, error, message):
    with pytest.raises(error, match=escaped(*message)):
        call()


def test_backward_on_a_non_scalar_without_a_gradient_says_so():
    with pytest.raises(RuntimeError, match=escaped("grad can be omitted only for a one-element output", (2, 3))):
        (t(2, 3) * 2).backward()


def test_backward_with_a_gradient_of_the_wrong_shape():
    with pytest.raises(ValueError, match=escaped("backward", (3, 2), (2, 3))):
        (t(2, 3) * 2).backward(np.ones((3, 2)))


def test_backward_on_a_tensor_without_a_graph():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tt.Tensor(np.ones(3)).sum().backward()


def test_backward_through_a_freed_graph_names_the_op():
    x = t(3)
    y = (x.sigmoid() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=escaped("Sum", "already freed", "retain_graph=True")):
        y.backward()


def test_errors_leave_no_half_built_graph():
    a, b = t(2, 3), t(4)
    with pytest.raises(ValueError):
        a + b
    (a * 2).sum().backward()  # the failed op left nothing that breaks the next backward
    np.testing.assert_array_equal(a.grad, np.full((2, 3), 2.0))
