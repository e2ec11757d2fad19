"""Numbers to words: the data generator (hand-checked cases, held-out test split), greedy and beam-search
decoding, exact match and BLEU, and the `tinytransformer translate` command end to end."""

import io
import math

import numpy as np
import pytest

from tinytransformer.cli import main
from tinytransformer.data.translation import (
    NumberTranslation, format_number, number_to_words, parse_number, sample_numbers, words_to_number,
)
from tinytransformer.translation import beam_search, bleu, exact_match, greedy_decode

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


def table_step(table):
    """A step function from a dict: prefix (tuple of ids after <bos>) -> next-token probabilities."""
    def step(prefixes, rows):
        return np.log(np.array([table[tuple(p[1:])] for p in prefixes]))
    return step


# bos=0, eos=1, tokens 2 ("a") and 3 ("b"). Greedy takes "a" (0.6), whose continuations are all 0.5 at best;
# "b" (0.4) is followed by <eos> with probability 0.9: 0.4 * 0.9 = 0.36 > 0.6 * 0.5 = 0.30.
TRAP = {
    (): [1e-9, 1e-9, 0.6, 0.4],
    (2,): [1e-9, 0.5, 0.25, 0.25],
    (3,): [1e-9, 0.9, 0.05, 0.05],
}


def test_beam_search_finds_a_likelier_sequence_than_greedy():
    greedy, greedy_score = greedy_decode(table_step(TRAP), 1, 0, 1, max_len=2)
    beam, beam_score = beam_search(table_step(TRAP), 1, 0, 1, max_len=2, beam_size=2)
    assert greedy == [[2]] and beam == [[3]]
    assert math.isclose(greedy_score[0], math.log(0.3)) and math.isclose(beam_score[0], math.log(0.36))


def test_beam_of_one_is_greedy(rng):
    V, bos, eos = 6, 0, 1
    weights = rng.standard_normal((4, 3, V))  # the next token's scores depend on the source, the length, the last token

    def step(prefixes, rows):
        z = weights[rows, (prefixes.shape[1] - 1) % 3] + 0.5 * prefixes[:, -1:]
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    for max_len in (1, 4, 9):
        greedy, g_scores = greedy_decode(step, 4, bos, eos, max_len)
        beam, b_scores = beam_search(step, 4, bos, eos, max_len, beam_size=1)
        assert greedy == beam
        np.testing.assert_allclose(g_scores, b_scores)
    wide, w_scores = beam_search(step, 4, bos, eos, 9, beam_size=4)
    assert np.all(w_scores >= g_scores - 1e-12)  # a wider beam never ends with a worse sum


def test_exact_match_and_bleu():
    assert exact_match(["a b", "c"], ["a b", "d"]) == 0.5
    assert bleu(["one two three four"], ["one two three four"]) == pytest.approx(1.0)
    assert bleu(["one two"], ["three four"]) == 0.0
    # p1 = 3/4, p2 = 2/3, p3 = 1/2 (p4 = 0/1 would make BLEU-4 zero): (3/4 * 2/3 * 1/2)^(1/3), same length
    assert bleu(["a b c x"], ["a b c d"], max_n=3) == pytest.approx((1 / 4) ** (1 / 3))
    # shorter output: brevity penalty exp(1 - 4/2)
    assert bleu(["a b"], ["a b c d"], max_n=2) == pytest.approx(math.exp(1 - 4 / 2))
    with pytest.raises(ValueError, match="as many predictions"):
        bleu(["a"], [])


def test_cli_translate_trains_saves_and_translates(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    code = main(["translate", "--train", "--out", str(out), "--max-steps", "3", "--test-size", "8",
                 "--d-model", "16", "--batch-size", "8"])
    assert code == 0
    report = capsys.readouterr().out
    assert "exact match" in report and "BLEU" in report
    assert main(["translate", "--checkpoint", str(out), "4,213", "12"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("4,213\t")
    monkeypatch.setattr("sys.stdin", io.StringIO("7\n\n1000\n"))
    assert main(["translate", "--checkpoint", str(out), "--beam", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    with pytest.raises(SystemExit):
        main(["translate", "--checkpoint", str(out), "12.5"])
    assert "parse_number" in capsys.readouterr().err
