"""BERT's masked-LM corruption: which tokens are chosen, what they become, and the labels."""

import numpy as np
import pytest

from tinytransformer.data.masking import mask_tokens

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIALS = (PAD, CLS, SEP)  # MASK is special whether listed or not
V = 40


def _sentences(rng, B=2000, T=64):
    """[CLS] words [SEP] then padding, of random lengths; words are ordinary ids 4..V-1."""
    ids = rng.integers(4, V, (B, T))
    lengths = rng.integers(10, T + 1, B)
    ids[:, 0] = CLS
    ids[np.arange(B), lengths - 1] = SEP
    ids[np.arange(T)[None, :] >= lengths[:, None]] = PAD
    return ids


def _corrupt(seed, **kwargs):
    ids = _sentences(np.random.default_rng(100 + seed))
    inputs, labels = mask_tokens(ids, np.random.default_rng(seed), V, MASK, SPECIALS, **kwargs)
    return ids, inputs, labels


def test_fifteen_percent_of_ordinary_tokens_chosen_and_split_80_10_10():
    ids, inputs, labels = _corrupt(0)
    eligible = ~np.isin(ids, SPECIALS)
    chosen = labels != -100
    n = chosen.sum()
    assert n / eligible.sum() == pytest.approx(0.15, abs=0.005)  # round(0.15 n) per row: close to exact
    masked = chosen & (inputs == MASK)
    unchanged = chosen & (inputs == ids)
    replaced = chosen & (inputs != MASK) & (inputs != ids)
    # about 10,500 chosen tokens: each share's binomial standard deviation is at most 0.004, a fifth of the tolerance
    assert masked.sum() / n == pytest.approx(0.8, abs=0.02)
    # a random replacement equals the original with probability 1/36 (36 ordinary ids), as in BERT
    assert (unchanged.sum() / n) == pytest.approx(0.1 + 0.1 / 36, abs=0.015)
    assert (replaced.sum() / n) == pytest.approx(0.1 * 35 / 36, abs=0.015)
    random_tokens = inputs[replaced]
    assert np.all(random_tokens >= 4) and np.all(random_tokens < V)  # never a special token
    counts = np.bincount(random_tokens, minlength=V)[4:]
    assert counts.min() > 0  # drawn from every ordinary id


def test_specials_and_padding_never_chosen_and_labels_exactly_at_chosen_positions():
    ids, inputs, labels = _corrupt(1)
    special = np.isin(ids, SPECIALS)
    assert np.all(labels[special] == -100)
    np.testing.assert_array_equal(inputs[special], ids[special])  # [CLS], [SEP] and padding stay as they were
    chosen = labels != -100
    np.testing.assert_array_equal(labels[chosen], ids[chosen])  # the label is the original token
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])  # nothing changes outside the chosen positions
    per_row = chosen.sum(axis=1)
    eligible = (~special).sum(axis=1)
    np.testing.assert_array_equal(per_row, np.maximum(np.round(0.15 * eligible), 1))
    assert labels.dtype == np.int64 and inputs.dtype == ids.dtype


def test_seeded_repeatable_and_input_untouched():
    ids, a_inputs, a_labels = _corrupt(2)
    before = ids.copy()
    _, b_inputs, b_labels = _corrupt(2)
    np.testing.assert_array_equal(a_inputs, b_inputs)
    np.testing.assert_array_equal(a_labels, b_labels)
    np.testing.assert_array_equal(ids, before)
    _, c_inputs, _ = _corrupt(3)
    assert not np.array_equal(a_inputs, c_inputs)


def test_every_chosen_position_is_spread_uniformly_over_a_row():
    """Chosen positions fall anywhere among a row's ordinary tokens, not only at its start."""
    ids = np.full((2000, 22), 7)
    ids[:, 0], ids[:, -1] = CLS, SEP
    _, labels = mask_tokens(ids, np.random.default_rng(4), V, MASK, SPECIALS)
    frequency = (labels[:, 1:-1] != -100).mean(axis=0)  # 20 ordinary tokens, 3 chosen in each row
    np.testing.assert_allclose(frequency, 0.15, atol=0.03)


def test_other_rates_short_rows_and_one_dimensional_input():
    ids = np.array([CLS, 5, SEP, PAD, PAD])
    inputs, labels = mask_tokens(ids, np.random.default_rng(5), V, MASK, SPECIALS, mask_token_prob=1.0,
                                 random_token_prob=0.0)
    np.testing.assert_array_equal(labels, [-100, 5, -100, -100, -100])  # at least one token in a row that has one
    np.testing.assert_array_equal(inputs, [CLS, MASK, SEP, PAD, PAD])
    only_specials = np.array([[CLS, SEP, PAD]])
    inputs, labels = mask_tokens(only_specials, np.random.default_rng(6), V, MASK, SPECIALS)
    assert np.all(labels == -100) and np.array_equal(inputs, only_specials)
    ids = _sentences(np.random.default_rng(7))
    _, labels = mask_tokens(ids, np.random.default_rng(8), V, MASK, SPECIALS, mask_prob=0.4)
    assert (labels != -100).sum() / (~np.isin(ids, SPECIALS)).sum() == pytest.approx(0.4, abs=0.005)


def test_bad_arguments_give_clear_errors():
    rng = np.random.default_rng(0)
    ids = np.array([[CLS, 5, 6, SEP]])
    with pytest.raises(ValueError, match="mask_prob"):
        mask_tokens(ids, rng, V, MASK, SPECIALS, mask_prob=0.0)
    with pytest.raises(ValueError, match="at most 1"):
        mask_tokens(ids, rng, V, MASK, SPECIALS, mask_token_prob=0.9, random_token_prob=0.2)
    with pytest.raises(ValueError, match="ids must lie"):
        mask_tokens(ids + V, rng, V, MASK, SPECIALS)
    with pytest.raises(ValueError, match="mask_id"):
        mask_tokens(ids, rng, V, V, SPECIALS)
    with pytest.raises(ValueError, match="integer array"):
        mask_tokens(ids.astype(float), rng, V, MASK, SPECIALS)
    with pytest.raises(ValueError, match="every id"):
        mask_tokens(np.array([[0, 1]]), rng, 2, 1, [0])
