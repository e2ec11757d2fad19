import numpy as np
import pytest
import torch
from compare_twins import DTYPES, assert_same, on_both

from tinytransformer.kernels import embedding_backward, use_backend


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
@pytest.mark.parametrize("shape, c, v", [((1,), 1, 1), ((7, 13), 33, 5), ((4, 64), 128, 65)])
def test_numba_matches_numpy(rng, dtype, padding_idx, shape, c, v):
    indices = rng.integers(0, v, size=shape)  # many repeats: the scatter-add must add them all
    grad = rng.standard_normal(shape + (c,)).astype(dtype)
    padding_idx = None if v == 1 else padding_idx
    ref, fast = on_both(embedding_backward, grad, indices, v, padding_idx)
    assert ref.shape == (v, c)
    assert_same(ref, fast, dtype)


@pytest.mark.parametrize("padding_idx", [None, 0])
def test_numpy_reference_matches_torch(rng, padding_idx):
    indices = rng.integers(0, 6, size=(5, 9))
    grad = rng.standard_normal((5, 9, 4))
    with use_backend("numpy"):
        ours = embedding_backward(grad, indices, 6, padding_idx)
    weight = torch.zeros(6, 4, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.embedding(torch.tensor(indices), weight, padding_idx=padding_idx).backward(torch.tensor(grad))
    np.testing.assert_allclose(ours, weight.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_repeated_indices_accumulate():
    grad = np.ones((4, 2))
    for name in ("numpy", "numba"):
        with use_backend(name):
            np.testing.assert_array_equal(embedding_backward(grad, np.array([1, 1, 1, 0]), 3), [[1, 1], [3, 3], [0, 0]])


def test_bad_indices_raise():
    with pytest.raises(IndexError, match="embedding_backward: index 3 is out of range for 3 embeddings"):
        embedding_backward(np.ones((2, 4)), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match=r"embedding_backward: grad must be float of shape indices.shape \+ \(C,\)"):
        embedding_backward(np.ones((3, 4)), np.array([0, 1]), 3)
    with pytest.raises(IndexError, match="embedding_backward: padding_idx 5 is out of range"):
        embedding_backward(np.ones((2, 4)), np.array([0, 1]), 3, padding_idx=5)
