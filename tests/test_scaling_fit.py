"""Power-law fits recover known exponents; parameters and compute are counted as Kaplan et al. count them."""

import numpy as np
import pytest

from tinytransformer.interpret import PowerLaw, fit_power_law, non_embedding_parameters, training_flops
from tinytransformer.models.gpt import GPT, GPTConfig


def test_exact_power_law_is_recovered():
    n = np.logspace(3, 6, 7)
    fit = fit_power_law(n, 12.0 * n ** -0.076)
    assert fit.alpha == pytest.approx(0.076, rel=1e-10)
    assert fit.a == pytest.approx(12.0, rel=1e-10)
    assert fit.c == 0 and fit.r2 == pytest.approx(1.0)


def test_noisy_power_law_is_recovered_within_the_noise():
    rng = np.random.default_rng(0)
    n = np.logspace(3, 6, 30)
    loss = 8.0 * n ** -0.3 * np.exp(rng.normal(0, 0.01, n.shape))  # 1% multiplicative noise
    fit = fit_power_law(n, loss)
    assert fit.alpha == pytest.approx(0.3, abs=0.01)
    assert 0.95 < fit.r2 < 1.0


def test_power_law_with_offset_is_recovered():
    n = np.logspace(3, 7, 9)
    loss = 40.0 * n ** -0.5 + 1.7
    fit = fit_power_law(n, loss, offset=True)
    assert fit.alpha == pytest.approx(0.5, rel=1e-4)
    assert fit.c == pytest.approx(1.7, rel=1e-4)
    assert fit.a == pytest.approx(40.0, rel=1e-3)
    np.testing.assert_allclose(fit(n), loss, rtol=1e-4)
    plain = fit_power_law(n, loss)  # without the offset the exponent comes out too small
    assert plain.alpha < 0.3


def test_fit_rejects_what_it_cannot_fit():
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2, 3], [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_power_law([1, 2], [2.0, 1.0], offset=True)
    with pytest.raises(ValueError, match="1-D of one length"):
        fit_power_law([1, 2, 3], [2.0, 1.0])


def test_power_law_evaluates_and_serialises():
    law = PowerLaw(a=2.0, alpha=0.5, c=1.0)
    assert law(4.0) == pytest.approx(2.0)
    assert law.to_dict()["alpha"] == 0.5


@pytest.mark.parametrize("n_layer, n_embd", [(1, 16), (3, 32)])
def test_non_embedding_parameters_count_the_blocks(n_layer, n_embd):
    """Per block: 12 d^2 weights + 13 d biases and LayerNorm gains; ln_f adds 2 d."""
    model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=n_layer, n_head=2, n_embd=n_embd))
    d = n_embd
    assert non_embedding_parameters(model) == n_layer * (12 * d * d + 13 * d) + 2 * d
    assert model.num_parameters() - non_embedding_parameters(model) == (50 + 8) * d  # wte (tied to lm_head), wpe


def test_training_flops_is_six_n_d():
    assert training_flops(1e6, 2e9) == 6 * 1e6 * 2e9
