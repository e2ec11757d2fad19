"""Checks of exercises/04_positions.py: an embedding's backward, sinusoidal positions, rotary positions.

The backward is held to ``nn.functional.embedding``'s and to central differences; the table to
``nn.functional.sinusoidal_positions``; the rotation to ``nn.RotaryEmbedding`` (half-split pairs).
"""

import numpy as np

from ..autograd import Tensor
from ..nn import RotaryEmbedding
from ..nn.functional import embedding, sinusoidal_positions
from .checking import Check, ExerciseFailure, expect_close, expect_gradcheck, expect_shape, shapes, with_backward

# (ids, num_embeddings, embedding_dim): repeated ids, unused rows, a batch of sequences, one id, one row
EMBEDDING_CASES = [
    (np.array([3, 1, 3, 7]), 10, 4),
    (np.array([[0, 2, 2], [2, 5, 0]]), 6, 3),
    (np.array(4), 5, 2),
    (np.array([0, 0, 0]), 1, 1),
]


def check_embedding_backward(embedding_backward):
    rng = np.random.default_rng(8)
    for ids, num, dim in EMBEDDING_CASES:
        grad = rng.standard_normal(ids.shape + (dim,))
        case = f"{shapes(ids=ids, grad=grad)}, num_embeddings={num}"
        got = expect_shape("dL/dW", embedding_backward(grad.copy(), ids.copy(), num), (num, dim), case)

        def lookup(w, ids=ids):
            return w[ids], ()

        fn = with_backward(lookup, lambda g, ids=ids, num=num: embedding_backward(g, ids.copy(), num))
        weight = rng.standard_normal((num, dim))
        expect_gradcheck(fn, [Tensor(weight.copy(), requires_grad=True)], case)
        t = Tensor(weight.copy(), requires_grad=True)
        embedding(ids, t).backward(grad)
        expect_close("dL/dW", got, t.grad, case)


# (n_positions, dim): even and odd widths, one position, one column
SINUSOID_SIZES = [(16, 8), (7, 5), (1, 4), (50, 1), (3, 2)]


def check_sinusoidal_positions(sinusoidal):
    for n, dim in SINUSOID_SIZES:
        case = f"for n_positions={n}, dim={dim}"
        expect_close("the table", sinusoidal(n, dim), sinusoidal_positions(n, dim, dtype=np.float64), case,
                     atol=1e-10, rtol=1e-8)


# (x's shape (..., T, d), offset): one sequence, a batch of heads, one position late in a sequence
ROTARY_CASES = [((6, 8), 0), ((2, 3, 5, 4), 0), ((1, 2), 7), ((3, 4, 16), 5)]


def check_apply_rotary(apply_rotary):
    rng = np.random.default_rng(9)
    for shape, offset in ROTARY_CASES:
        x = rng.standard_normal(shape)
        T, d = shape[-2:]
        case = f"{shapes(x=x)}, offset={offset}, base=10000"
        got = expect_shape("the rotated x", apply_rotary(x.copy(), offset), shape, case)
        rope = RotaryEmbedding(d, max_len=offset + T, dtype=np.float64)
        want = rope(Tensor(x), offset=offset).data
        lengths = np.linalg.norm(np.asarray(got, dtype=np.float64), axis=-1)
        if not np.allclose(lengths, np.linalg.norm(x, axis=-1), rtol=1e-9):
            raise ExerciseFailure(f"the rotated vectors have other lengths than x's: a rotation keeps lengths "
                                  f"(pair dimension i with i + d/2, turned by cos and sin of one angle), {case}")
        expect_close("the rotated x", got, want, case, atol=1e-10, rtol=1e-8)


CHECKS = [
    Check("embedding_backward", check_embedding_backward),
    Check("sinusoidal_positions", check_sinusoidal_positions),
    Check("apply_rotary", check_apply_rotary),
]
