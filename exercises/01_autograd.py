"""Exercises for lesson 01, tensors and autograd: the chain rule, written by hand.

Replace each `raise NotImplementedError` with your code, then check it from the project root:

    tinytransformer exercises check 01

Each check compares your answer with the library's on random inputs of several shapes, and each backward
pass also with central differences. The solutions are in exercises/solutions/01_autograd.py: try first.
"""

import numpy as np  # noqa: F401 - for your code


def mul_backward(grad, a, b):
    """The backward pass of z = a * b, elementwise, where the shapes of a and b broadcast (NumPy's rules).

    a: an array, e.g. (4, 3); b: an array whose shape broadcasts with a's, e.g. (3,), (4, 1) or ();
    grad: dL/dz, of the broadcast shape, e.g. (4, 3).
    Returns (dL/da, dL/db), each of its own input's shape.

        dL/da = grad * b        dL/db = grad * a        (on the broadcast shape)

    then each summed back to its input's shape: broadcasting copied the input along the axes it lacked
    (leading ones) and along its size-1 axes, and a copied value collects all its copies' gradients.
    """
    raise NotImplementedError


def matmul_backward(grad, a, b):
    """The backward pass of Z = A @ B.

    a: (..., n, k); b: (..., k, m) with the same leading axes, or (k, m) shared by every matrix of a;
    grad: dL/dZ, (..., n, m). Returns (dL/dA, dL/dB), of a's and b's shapes:

        dL/dA = dL/dZ @ B^T        dL/dB = A^T @ dL/dZ

    where ^T swaps the last two axes (np.swapaxes(x, -1, -2)). A B of shape (k, m) shared by a batch
    is used by every product, so its gradient is the sum over the batch.
    """
    raise NotImplementedError


def topological_order(root):
    """Every tensor that ``root`` was computed from, and root itself, each once, parents before children.

    root: a Tensor. A tensor made by an op has ``t._ctx.parents``, a tuple of the tensors it was made from
    (None for an input that needs no gradient); a leaf has ``t._ctx is None``.
    Returns a list of tensors in which every tensor comes after all of its parents (so root is last):
    walking it backwards, the chain rule reaches each node once, with its whole gradient.

    Keep your own stack of nodes to visit rather than calling the function recursively: the check
    includes a chain of 5,000 ops, deeper than Python's recursion limit. Compare nodes by identity
    (``id(t)``): a Tensor's ``==`` compares values.
    """
    raise NotImplementedError
