r"""The backward pass of an embedding lookup: a scatter-add of row gradients.

The forward is a gather, ``y[n] = weight[indices[n]]`` (one fancy index in
NumPy, nothing to fuse). Row ``v`` of the weight was copied to every position
where ``indices == v``, so its gradient is the sum of the gradients there:

    dL/dweight[v] = sum over n with indices[n] == v of dL/dy[n]

Rows equal to ``padding_idx`` receive no gradient, as in ``torch.nn.Embedding``.
"""

import numpy as np

from .backend import get_backend
from .jit import numba_kernel


def embedding_backward_numpy(grad, indices, num_embeddings, padding_idx):
    """grad (N, C), indices (N,) -> dweight (num_embeddings, C); padding_idx -1 means none."""
    dweight = np.zeros((num_embeddings, grad.shape[1]), dtype=grad.dtype)  # (V, C)
    np.add.at(dweight, indices, grad)  # dweight[indices[n]] += grad[n] for every n, repeats included
    if padding_idx >= 0:
        dweight[padding_idx] = 0
    return dweight


@numba_kernel()
def embedding_backward_numba(grad, indices, num_embeddings, padding_idx):
    """The same as embedding_backward_numpy, as one loop over the rows, in order.

    Not parallel: two rows of ``grad`` with the same index add into the same
    row of ``dweight``, so threads would need private copies or a split of the
    columns, and this loop only streams memory (measured: splitting the
    columns among threads ran several times slower than the plain loop).
    """
    n, c = grad.shape
    dweight = np.zeros((num_embeddings, c), dtype=grad.dtype)
    for i in range(n):
        row = indices[i]
        if row == padding_idx:
            continue
        dst, src = dweight[row], grad[i]  # (C,), (C,)
        for j in range(c):
            dst[j] += src[j]
    return dweight


def embedding_backward(grad, indices, num_embeddings, padding_idx=None):
    """dL/dweight (num_embeddings, C) from grad (..., C) at integer indices (...)."""
    grad = np.asarray(grad)
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding_backward: indices must be integers, got {indices.dtype}")
    if grad.dtype.kind != "f" or grad.shape[:-1] != indices.shape:
        raise ValueError(
            f"embedding_backward: grad must be float of shape indices.shape + (C,) = {indices.shape} + (C,), "
            f"got {grad.dtype} {grad.shape}"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= num_embeddings):
        bad = indices[(indices < 0) | (indices >= num_embeddings)][0]
        raise IndexError(f"embedding_backward: index {bad} is out of range for {num_embeddings} embeddings")
    if padding_idx is None:
        padding_idx = -1
    elif not -num_embeddings <= padding_idx < num_embeddings:
        raise IndexError(f"embedding_backward: padding_idx {padding_idx} is out of range for {num_embeddings} embeddings")
    elif padding_idx < 0:
        padding_idx += num_embeddings  # -1 means the last row, as in torch
    flat_idx = np.ascontiguousarray(indices.reshape(-1), dtype=np.int64)  # (N,)
    flat_grad = np.ascontiguousarray(grad.reshape(-1, grad.shape[-1]))  # (N, C)
    impl = embedding_backward_numba if get_backend() == "numba" else embedding_backward_numpy
    return impl(flat_grad, flat_idx, int(num_embeddings), int(padding_idx))
