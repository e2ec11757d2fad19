"""Numbers to words, the translation task's data: hand-checked cases, the held-out test split, padded batches."""

import numpy as np
import pytest

from tinytransformer.data.translation import (
    NumberPairs, NumberTranslation, format_number, number_to_words, parse_number, sample_numbers, words_to_number,
)

HAND_CHECKED = {
    0: "zero", 7: "seven", 13: "thirteen", 20: "twenty", 21: "twenty-one", 99: "ninety-nine",
    100: "one hundred", 101: "one hundred one", 110: "one hundred ten", 999: "nine hundred ninety-nine",
    1000: "one thousand", 1001: "one thousand one", 4213: "four thousand two hundred thirteen",
    12_345: "twelve thousand three hundred forty-five", 100_000: "one hundred thousand",
    970_021: "nine hundred seventy thousand twenty-one",
    999_999: "nine hundred ninety-nine thousand nine hundred ninety-nine", 1_000_000: "one million",
    20_000_017: "twenty million seventeen",
}


@pytest.mark.parametrize("n", HAND_CHECKED)
def test_number_to_words_on_hand_checked_cases(n):
    assert number_to_words(n) == HAND_CHECKED[n]
    assert words_to_number(HAND_CHECKED[n]) == n


def test_words_to_number_inverts_number_to_words_and_rejects_the_rest(rng):
    for n in rng.integers(0, 10**9, 2000):
        assert words_to_number(number_to_words(int(n))) == n
    for bad in ["twenty one", "one twenty", "hundred", "", "forty-", "five thousand thousand", "eleventy"]:
        with pytest.raises(ValueError, match="words_to_number"):
            words_to_number(bad)
    with pytest.raises(ValueError, match="number_to_words: n must be an integer"):
        number_to_words(-1)


def test_digits_with_and_without_commas():
    assert format_number(4213) == "4,213" and format_number(12) == "12"
    assert parse_number("4,213") == parse_number("4213") == 4213
    for bad in ["4,21", "-3", "4.5", "", "1,0000"]:
        with pytest.raises(ValueError, match="parse_number"):
            parse_number(bad)


def test_test_split_is_held_out_from_training(rng):
    task = NumberTranslation(test_size=500, seed=3)
    test = set(task.test_numbers.tolist())
    assert len(test) == 500 and all(0 <= n < 1_000_000 for n in test)
    drawn = task.sample_train(rng, 200_000)
    assert not test & set(drawn.tolist())
    assert np.array_equal(task.test_numbers, NumberTranslation(test_size=500, seed=3).test_numbers)
    digits = np.array([len(str(n)) for n in drawn])
    counts = np.bincount(digits, minlength=7)[1:]
    assert counts.min() > 0.9 * len(drawn) / 6  # each digit count about equally often
    assert ((drawn % 100_000 == 0) & (drawn > 0)).sum() > 100  # "700,000": not one in 100,000 but about one in 900


def test_length_split_trains_short_and_tests_long(rng):
    task = NumberTranslation(train_range=(0, 100_000), test_range=(100_000, 1_000_000), test_size=100)
    assert task.sample_train(rng, 10_000).max() < 100_000 <= task.test_numbers.min()
    with pytest.raises(ValueError, match="need 0 <= low < high"):
        sample_numbers(rng, 3, 5, 5)


def test_batches_are_bos_target_and_target_eos_padded():
    task = NumberTranslation(test_size=10)
    src, tgt_in, tgt_out = task.batch([21, 4213])
    tok = task.target_tokenizer
    assert task.source_tokenizer.decode(src[0][src[0] > 4]) == "2 1"
    assert tgt_in[0, 0] == tok.bos_id and tgt_out[0, 3] == tok.eos_id and tgt_out[0, 4] == tok.pad_id
    np.testing.assert_array_equal(tgt_in[:, 1:], np.where(tgt_out[:, :-1] == tok.eos_id, 0, tgt_out[:, :-1]))
    assert task.decode_target(tgt_out[1]) == "four thousand two hundred thirteen"
    reverse = NumberTranslation("to_digits", test_size=10)
    assert reverse.texts(4213) == ("four thousand two hundred thirteen", "4,213")
    assert reverse.normalise_source("Twenty-One") == "twenty-one"


def test_number_pairs_is_a_batch_source_of_fresh_training_numbers():
    task = NumberTranslation(test_size=10)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    src, tgt_in, tgt_out = NumberPairs(task, 8).next_batch(a)
    expected = task.batch(task.sample_train(b, 8))
    for got, want in zip((src, tgt_in, tgt_out), expected):
        assert got.shape[0] == 8 and got.dtype == np.int64
        np.testing.assert_array_equal(got, want)
