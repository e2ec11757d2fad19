"""Positional encodings: the sinusoidal table, learned positions, and rotary embeddings (RoPE)."""

import math

import numpy as np
import pytest
import torch

import tinytransformer as tt
import tinytransformer.nn.functional as F


def test_sinusoidal_table_follows_the_formula():
    table = F.sinusoidal_positions(50, 6)
    assert table.shape == (50, 6) and table.dtype == np.float32
    for pos in (0, 1, 7, 49):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)
    odd = F.sinusoidal_positions(10, 5, dtype=np.float64)
    np.testing.assert_allclose(odd[:, :4], F.sinusoidal_positions(10, 5, np.float64)[:, :4])
    np.testing.assert_allclose(odd[:, 4], np.sin(np.arange(10) / 10000 ** (4 / 5)))


def test_sinusoidal_table_matches_the_pytorch_tutorial_construction():
    """The PyTorch tutorial builds the table with exp(-log(10000) 2i / d); the two must agree."""
    n, d = 40, 16
    position = torch.arange(n).unsqueeze(1).double()
    div_term = torch.exp(torch.arange(0, d, 2).double() * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    np.testing.assert_allclose(F.sinusoidal_positions(n, d, np.float64), pe.numpy(), rtol=1e-12, atol=1e-12)


def test_sinusoidal_shift_is_a_rotation():
    """PE[pos + k] is a fixed linear map of PE[pos]: a rotation by k * omega_i of each (sin, cos) pair."""
    d, k = 8, 3
    table = F.sinusoidal_positions(30, d, np.float64)
    omega = 1 / 10000 ** (np.arange(0, d, 2) / d)
    c, s = np.cos(k * omega), np.sin(k * omega)
    sin, cos = table[:-k, 0::2], table[:-k, 1::2]
    np.testing.assert_allclose(table[k:, 0::2], sin * c + cos * s, atol=1e-12)
    np.testing.assert_allclose(table[k:, 1::2], cos * c - sin * s, atol=1e-12)


def test_sinusoidal_module_adds_the_table_and_is_not_saved(rng):
    enc = tt.nn.SinusoidalPositionalEncoding(8, max_len=20)
    assert enc.state_dict() == {} and [n for n, _ in enc.named_buffers()] == ["pe"]
    x = tt.Tensor(rng.standard_normal((2, 5, 8)), requires_grad=True)
    out = enc(x, offset=3)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data - x.data, np.broadcast_to(F.sinusoidal_positions(20, 8, np.float64)[3:8],
                                                                  (2, 5, 8)), atol=1e-7)
    tt.gradcheck(lambda x: enc(x), [x])
    assert enc(tt.zeros(1, 4, 8)).dtype == np.float32
    with pytest.raises(ValueError, match=r"positions 18\.\.22 exceed max_len=20"):
        enc(tt.zeros(1, 5, 8), offset=18)
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., T, 8\), got shape \(2, 5, 6\)"):
        enc(tt.zeros(2, 5, 6))


def test_learned_positions_match_torch_embedding_of_positions(rng):
    ours = tt.nn.LearnedPositionalEmbedding(10, 4).double()
    wpe = torch.nn.Embedding(10, 4).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in wpe.state_dict().items()})
    x = rng.standard_normal((3, 6, 4))
    xt, xtt = tt.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = ours(xt, offset=2), xtt + wpe(torch.arange(2, 8))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    expected.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.weight.grad, wpe.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad, xtt.grad.numpy(), rtol=1e-12)
    assert np.all(ours.weight.grad[:2] == 0) and np.all(ours.weight.grad[8:] == 0)
    tt.gradcheck(lambda x, w: ours(x), [xt, ours.weight])
    with pytest.raises(ValueError, match=r"positions 0\.\.10 exceed max_len=10"):
        ours(tt.zeros(1, 11, 4))


def torch_rope(x, base=10000.0):
    """The GPT-NeoX / LLaMA (half-split) rotary embedding, written in torch."""
    T, d = x.shape[-2:]
    inv_freq = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * torch.cos(angles) + torch.cat([-x2, x1], dim=-1) * torch.sin(angles)


def test_rotary_matches_torch_and_gradchecks(rng):
    rope = tt.nn.RotaryEmbedding(8, max_len=16, dtype=np.float64)
    x = rng.standard_normal((2, 3, 7, 8))
    xt, xtt = tt.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = rope(xt), torch_rope(xtt)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    expected.backward(torch.tensor(g))
    np.testing.assert_allclose(xt.grad, xtt.grad.numpy(), rtol=1e-12, atol=1e-12)
    small = tt.Tensor(rng.standard_normal((2, 4, 8)), requires_grad=True)  # few outputs: little rounding in the sum
    tt.gradcheck(lambda x: rope(x, offset=5), [small])
    assert rope.state_dict() == {}


def test_rotary_preserves_norms_and_offset_continues_the_sequence(rng):
    rope = tt.nn.RotaryEmbedding(6, max_len=32)
    x = tt.Tensor(rng.standard_normal((1, 10, 6)).astype(np.float32))
    out = rope(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.data, axis=-1), np.linalg.norm(x.data, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(rope(x[:, 4:], offset=4).data, out.data[:, 4:], rtol=1e-6)
    np.testing.assert_array_equal(out.data[:, 0], x.data[:, 0])  # position 0 is not rotated


def test_rotary_scores_depend_only_on_relative_position(rng):
    """q at position m and k at position n: q' . k' is the same for every (m, n) with the same n - m."""
    rope = tt.nn.RotaryEmbedding(8, max_len=64, dtype=np.float64)
    q, k = rng.standard_normal(8), rng.standard_normal(8)
    T = 40
    qs = rope(tt.Tensor(np.tile(q, (T, 1)))).data  # the same q placed at every position
    ks = rope(tt.Tensor(np.tile(k, (T, 1)))).data
    scores = qs @ ks.T  # scores[m, n]
    for delta in (-7, 0, 3, 20):
        diagonal = np.diagonal(scores, offset=delta)
        np.testing.assert_allclose(diagonal, diagonal[0], rtol=1e-10, atol=1e-12)
    assert not np.allclose(np.diagonal(scores, 1)[0], np.diagonal(scores, 2)[0])
    unrotated = np.tile(q, (T, 1)) @ np.tile(k, (T, 1)).T
    assert np.ptp(unrotated) < 1e-12 < np.ptp(scores)  # without RoPE the score ignores position entirely


def test_rotary_bad_input():
    with pytest.raises(ValueError, match=r"head_dim must be even to form pairs, got 7"):
        tt.nn.RotaryEmbedding(7)
    rope = tt.nn.RotaryEmbedding(4, max_len=8)
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., T, 4\), got shape \(3, 6\)"):
        rope(tt.zeros(3, 6))
    with pytest.raises(ValueError, match=r"positions 6\.\.8 exceed max_len=8"):
        rope(tt.zeros(3, 4), offset=6)
    with pytest.raises(ValueError, match=r"cos \(2, 4\) and sin \(2, 4\) must both be \(T, d\) = \(3, 4\)"):
        F.apply_rotary(tt.zeros(3, 4), np.ones((2, 4)), np.ones((2, 4)))
