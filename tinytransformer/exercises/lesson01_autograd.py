"""Checks of exercises/01_autograd.py: the backward of ``Mul`` and of ``MatMul``, and a topological order.

Each backward is held to the library's (``Mul``, ``MatMul`` in autograd/arithmetic.py) and to central
differences; the order is held to what a backward pass needs: every node once, after all of its parents.
"""

import numpy as np

from ..autograd import Tensor
from ..autograd.tensor import topological_order
from .checking import Check, ExerciseFailure, expect_close, expect_gradcheck, expect_shape, shapes, unpack, with_backward

# (a's shape, b's shape): equal shapes, broadcasting along a new leading axis, size-1 axes, scalars
MUL_SHAPES = [((4, 3), (4, 3)), ((4, 3), (3,)), ((4, 1), (1, 3)), ((2, 3, 4), (3, 1)), ((), (2, 3)), ((5,), ())]
# (a's shape, b's shape): a matrix product, size-1 axes, a batch of products, a weight shared by a batch
MATMUL_SHAPES = [((4, 3), (3, 2)), ((1, 1), (1, 1)), ((3, 1), (1, 5)), ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5))]


def _library_grads(op, a, b, grad):
    ta, tb = Tensor(a.copy(), requires_grad=True), Tensor(b.copy(), requires_grad=True)
    op(ta, tb).backward(grad)
    return ta.grad, tb.grad


def check_backward(learner, op, shape_cases):
    """Shapes, then central differences, then the library's gradients, case by case."""
    rng = np.random.default_rng(1)
    for a_shape, b_shape in shape_cases:
        a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
        out = op(Tensor(a), Tensor(b)).data
        grad = rng.standard_normal(out.shape)
        case = shapes(a=a, b=b)
        ga, gb = unpack(learner(grad, a.copy(), b.copy()), 2, "dL/da, dL/db", case)
        expect_shape("dL/da", ga, a.shape, case)
        expect_shape("dL/db", gb, b.shape, case)
        fn = with_backward(lambda x, y: (op(Tensor(x), Tensor(y)).data, (x, y)), learner)
        expect_gradcheck(fn, [Tensor(a.copy(), requires_grad=True), Tensor(b.copy(), requires_grad=True)], case)
        want_a, want_b = _library_grads(op, a, b, grad)
        expect_close("dL/da", ga, want_a, case)
        expect_close("dL/db", gb, want_b, case)


def check_mul_backward(mul_backward):
    check_backward(mul_backward, lambda x, y: x * y, MUL_SHAPES)


def check_matmul_backward(matmul_backward):
    check_backward(matmul_backward, lambda x, y: x @ y, MATMUL_SHAPES)


def _graphs():
    """(description, root) of graphs to sort: the lesson's diamond, shared nodes, a long chain."""
    rng = np.random.default_rng(2)
    a, b = (Tensor(rng.standard_normal(3), requires_grad=True) for _ in range(2))
    t = a * 2.0
    e = a * b
    yield "the diamond L = (a * 2) * (a * b)", t * e
    x = Tensor(rng.standard_normal(2), requires_grad=True)
    h = x
    for _ in range(6):
        h = h.tanh() + h * 0.5  # h is used twice: 2^6 paths, 19 nodes
    yield "six layers of h = tanh(h) + h * 0.5", h
    leaf = Tensor(rng.standard_normal(2), requires_grad=True)
    yield "a leaf alone", leaf
    y = Tensor(np.ones(1), requires_grad=True)
    for _ in range(5000):
        y = y * 1.0001
    yield "a chain of 5,000 multiplications (more than Python's recursion limit)", y


def check_topological_order(learner):
    for what, root in _graphs():
        try:
            order = learner(root)
        except RecursionError:
            raise ExerciseFailure(f"RecursionError on {what}: keep your own stack of nodes to visit instead of "
                                  "calling the function recursively") from None
        if not isinstance(order, (list, tuple)):
            raise ExerciseFailure(f"returned a {type(order).__name__}, expected a list of tensors, on {what}")
        expected = topological_order(root)
        names = {id(node): i for i, node in enumerate(expected)}
        seen = {}
        for position, node in enumerate(order):
            if id(node) not in names:
                raise ExerciseFailure(f"item {position} is not a node of the graph ({type(node).__name__}), on {what}")
            if id(node) in seen:
                raise ExerciseFailure(f"a node appears twice, at {seen[id(node)]} and {position}, on {what}")
            seen[id(node)] = position
        if len(seen) != len(expected):
            raise ExerciseFailure(f"{len(seen)} nodes in the order, but the graph has {len(expected)}, on {what}")
        for node in order:
            parents = node._ctx.parents if node._ctx is not None else ()
            for parent in parents:
                if parent is not None and seen[id(parent)] > seen[id(node)]:
                    raise ExerciseFailure(f"the node at {seen[id(node)]} comes before its parent at "
                                          f"{seen[id(parent)]}, on {what}")


CHECKS = [
    Check("mul_backward", check_mul_backward),
    Check("matmul_backward", check_matmul_backward),
    Check("topological_order", check_topological_order),
]
