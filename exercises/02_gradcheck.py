"""Exercises for lesson 02, gradient checking: finite differences, and two gradients worth checking.

Replace each `raise NotImplementedError` with your code, then check it from the project root:

    tinytransformer exercises check 02

The solutions are in exercises/solutions/02_gradcheck.py: try first.
"""

import numpy as np  # noqa: F401 - for your code


def central_difference(f, x, eps=1e-6):
    """The gradient of a scalar function f at x, estimated by central differences, element by element.

    f: takes an array of x's shape and returns a float; x: a float64 array of any shape (even ());
    returns an array of x's shape:

        dL/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)        e_i: 1 at element i, 0 elsewhere

    Its error shrinks like eps^2 (a one-sided difference's like eps). You may move x's elements in place,
    but put each one back: x must be as it was when you return. (np.ndindex(x.shape) visits every index.)
    """
    raise NotImplementedError


def softmax_backward(grad, y):
    """The backward pass of y = softmax(x) over the last axis, from y alone.

    grad: dL/dy and y: softmax(x), both (..., C). Returns dL/dx, (..., C). With dy_j/dx_i = y_j (1[i=j] - y_i),

        dL/dx_i = sum_j dL/dy_j * dy_j/dx_i = y_i * (dL/dy_i - sum_j dL/dy_j * y_j)

    the sum taken over the last axis, row by row.
    """
    raise NotImplementedError


def cross_entropy_backward(logits, targets):
    """The gradient of the mean cross-entropy loss with respect to the logits.

    logits: (N, C) scores; targets: (N,) integer classes in [0, C). The loss is

        L = (1/N) sum_n -log softmax(logits[n])[targets[n]]

    Returns dL/dlogits, (N, C):  (softmax(logits) - onehot(targets)) / N, the softmax taken row by row
    (subtract each row's maximum before exp, so large logits do not overflow).
    """
    raise NotImplementedError
