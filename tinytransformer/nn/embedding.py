"""The embedding table: integer ids in, rows of a learned matrix out.

For a weight W of shape (num_embeddings, embedding_dim) and integer ids of any
shape S, ``embedding(ids, W)[s] = W[ids[s]]``, of shape S + (embedding_dim,).
It is a lookup, not arithmetic, so its backward pass is a scatter-add:

    dL/dW[v] = sum over every position s with ids[s] == v of dL/dy[s]

A row looked up twice (the same token twice in a batch) receives both
gradients, and a row never looked up receives zero. Row ``padding_idx``, if
given, is the padding token's vector: it is initialised to zero and gets no
gradient, so it stays zero through training (as in PyTorch).
"""

import numpy as np

from .. import kernels
from ..autograd import Function, as_array
from ..rng import get_rng
from ..validation import check_value
from .module import Module, Parameter, initial_weights


def scatter_add_rows(ids, rows, num_rows):
    """out[v] = sum of rows[i] over every i with ids[i] == v;  ids (N,), rows (N, D) -> (num_rows, D).

    The same as ``np.add.at(out, ids, rows)``; ``kernels.embedding_backward``
    does it faster (a sort and one ``np.add.reduceat``, or a Numba loop). The
    sums stay in ``rows``' dtype (float32 stays float32).
    """
    return kernels.embedding_backward(rows, ids, num_rows)


class EmbeddingFunction(Function):
    """y = W[ids];  dL/dW = scatter-add of dL/dy into the rows named by ids (no gradient for ids)."""

    @staticmethod
    def forward(ctx, ids, weight, padding_idx=None):
        ctx.ids, ctx.num_embeddings, ctx.padding_idx = ids, weight.shape[0], padding_idx
        return weight[ids]  # ids.shape + (D,)

    @staticmethod
    def backward(ctx, grad):
        dim = grad.shape[-1]
        gw = scatter_add_rows(ctx.ids.reshape(-1), grad.reshape(-1, dim), ctx.num_embeddings)  # (num, D)
        if ctx.padding_idx is not None:
            gw[ctx.padding_idx] = 0
        return None, gw


def _check_padding_idx(padding_idx, num_embeddings, where):
    """``padding_idx`` as a non-negative row number (negative counts from the end, as in PyTorch)."""
    if padding_idx is None:
        return None
    within = f"[{-num_embeddings}, {num_embeddings})"  # a row of the table
    return check_value(f"{where}: padding_idx", padding_idx, int, within) % num_embeddings


def embedding(input, weight, padding_idx=None):
    """Rows of ``weight`` (num_embeddings, D) picked by the integer ids ``input`` (any shape).

    Returns a tensor of shape input.shape + (D,) (``torch.nn.functional.embedding``).
    """
    ids = as_array(input)
    w = as_array(weight)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: input must hold integer ids, got dtype {ids.dtype}")
    if w.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {w.shape}")
    num = w.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= num):
        bad = np.unique(ids[(ids < 0) | (ids >= num)])
        raise IndexError(
            f"embedding: ids {bad[:10].tolist()} are out of range; ids must lie in [0, {num - 1}] "
            f"for num_embeddings={num}"
        )
    return EmbeddingFunction.apply(ids, weight, padding_idx=_check_padding_idx(padding_idx, num, "embedding"))


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``.

    The weight is initialised N(0, 1), like PyTorch, with row ``padding_idx``
    (if given) set to zero.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype=np.float32):
        super().__init__()
        num_embeddings = check_value("Embedding: num_embeddings", num_embeddings, int, "[1, inf)")
        embedding_dim = check_value("Embedding: embedding_dim", embedding_dim, int, "[1, inf)")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = _check_padding_idx(padding_idx, num_embeddings, "Embedding")
        weight = initial_weights(get_rng().standard_normal, size=(num_embeddings, embedding_dim), dtype=dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        self.weight = Parameter(weight)

    def forward(self, input):
        return embedding(input, self.weight, self.padding_idx)

    def infer(self, ids):
        """``forward`` on an array of ids, outside autograd (generation's inference path): ids.shape + (D,)."""
        return self.weight.data[ids]

    def extra_repr(self):
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"
