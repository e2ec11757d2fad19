"""Solutions to lesson 01's exercises (exercises/01_autograd.py): read them after trying.

    tinytransformer exercises check 01 --solutions
"""

import numpy as np


def sum_to_shape(grad, shape):
    """Sum ``grad`` over the axes broadcasting stretched, so that it has ``shape`` again."""
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra)))  # the leading axes the input lacked
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)  # its size-1 axes that grew
    return grad.sum(axis=stretched, keepdims=True)


def mul_backward(grad, a, b):
    grad_a = sum_to_shape(grad * b, np.shape(a))  # dz/da = b
    grad_b = sum_to_shape(grad * a, np.shape(b))  # dz/db = a
    return grad_a, grad_b


def matmul_backward(grad, a, b):
    grad_a = grad @ np.swapaxes(b, -1, -2)  # (..., n, m) @ (..., m, k) -> (..., n, k)
    grad_b = np.swapaxes(a, -1, -2) @ grad  # (..., k, n) @ (..., n, m) -> (..., k, m)
    if grad_b.ndim > b.ndim:  # a weight shared by the batch: one gradient per matrix of a, summed
        grad_b = grad_b.sum(axis=tuple(range(grad_b.ndim - b.ndim)))
    return grad_a, grad_b


def topological_order(root):
    order, visited = [], set()
    stack = [(root, False)]  # (node, whether its parents have been pushed already)
    while stack:
        node, expanded = stack.pop()
        if expanded:  # every parent was emitted before we came back to it
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        parents = node._ctx.parents if node._ctx is not None else ()
        for parent in parents:
            if parent is not None and id(parent) not in visited:
                stack.append((parent, False))
    return order
