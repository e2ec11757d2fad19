"""A translation task that needs no download: numbers to English words, and back.

    "4,213"    ->  "four thousand two hundred thirteen"
    "970,021"  ->  "nine hundred seventy thousand twenty-one"

The library writes the parallel data itself (``number_to_words``), so there is
an endless supply of training pairs and a test split that is held out
exactly: ``NumberTranslation`` draws its test numbers once, from a seed, and
never hands them out for training. American style: no "and", hyphens between
tens and units, commas between groups of three digits.

Tokens: the digits side is one token per character ("4", ",", "2", ...), the
words side one token per word, with the hyphen a token of its own ("twenty",
"-", "one"), so the target vocabulary is 32 words and the source 11 symbols.
Both use ``WordTokenizer`` with a fixed vocabulary and its special ids
(<pad>=0, <bos>=3, <eos>=4).
"""

import re

import numpy as np

from .batching import pad
from .word_tokenizer import SPECIALS, WordTokenizer

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = ((1_000_000, "million"), (1_000, "thousand"))
VALUES = {w: i for i, w in enumerate(ONES)} | {w: 10 * i for i, w in enumerate(TENS) if i >= 2}
SCALE_OF = {name: scale for scale, name in SCALES}
WORDS = (*ONES, *TENS[2:], "hundred", "thousand", "million", "-")
MAX_NUMBER = 999_999_999
DIRECTIONS = ("to_words", "to_digits")


def _below_thousand(n):
    words = []
    if n >= 100:
        words += [ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(TENS[n // 10] + (f"-{ONES[n % 10]}" if n % 10 else ""))
    elif n > 0:
        words.append(ONES[n])
    return words


def number_to_words(n) -> str:
    """English words for an integer 0 <= n <= 999,999,999: 4213 -> "four thousand two hundred thirteen"."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"number_to_words: n must be an integer in [0, {MAX_NUMBER:,}], got {n!r}")
    n = int(n)
    if n == 0:
        return "zero"
    words = []
    for scale, name in SCALES:
        if n >= scale:
            words += [*_below_thousand(n // scale), name]
            n %= scale
    return " ".join(words + _below_thousand(n))


def words_to_number(text: str) -> int:
    """The inverse of ``number_to_words`` ("twenty-one" -> 21), case aside; a ValueError for anything
    that ``number_to_words`` would not have written (checked by writing the result back out)."""
    words = re.findall(r"[a-z]+|-|\S", text.lower())
    total, group = 0, 0
    for word in words:
        if word in VALUES:
            group += VALUES[word]
        elif word == "hundred":
            group *= 100
        elif word in SCALE_OF:
            total, group = total + group * SCALE_OF[word], 0
        elif word != "-":
            raise ValueError(f"words_to_number: unexpected word {word!r} in {text!r}")
    n = total + group
    if not words or n > MAX_NUMBER or number_to_words(n) != detokenize(words, "words"):
        raise ValueError(f"words_to_number: {text!r} is not a number written out as, e.g., "
                         f"'four thousand two hundred thirteen' or 'twenty-one'")
    return n


def format_number(n) -> str:
    """Digits with a comma between groups of three: 4213 -> "4,213"."""
    return f"{int(n):,}"


def parse_number(text: str) -> int:
    """An integer from digits written with or without commas ("4,213" or "4213"); ValueError otherwise."""
    cleaned = text.strip()
    if not re.fullmatch(r"\d{1,3}(,\d{3})*|\d+", cleaned):
        raise ValueError(f"parse_number: {text!r} is not a non-negative whole number (digits, commas optional)")
    return int(cleaned.replace(",", ""))


def digits_tokenizer() -> WordTokenizer:
    """One token per digit or comma."""
    return WordTokenizer([*SPECIALS, *"0123456789,"], pattern=r"[0-9,]")


def words_tokenizer() -> WordTokenizer:
    """One token per number word; the hyphen of "twenty-one" is a token of its own."""
    return WordTokenizer([*SPECIALS, *WORDS], pattern=r"[a-z]+|-")


def detokenize(tokens, side) -> str:
    """Text from a list of token strings: digits are joined, words spaced, hyphens kept tight."""
    if side == "digits":
        return "".join(tokens)
    return " ".join(tokens).replace(" - ", "-")


def sample_numbers(rng, n, low, high, zero_rate=0.3):
    """``n`` integers in [low, high), drawn so that every kind of number is seen often enough.

    First a digit count, uniformly among those the range holds (uniform numbers
    would be 90% six-digit ones in [0, 1,000,000)); then a number uniformly
    among those with that many digits; then each digit but the first is set to
    0 with probability ``zero_rate`` (kept only if the result stays in range),
    because numbers like "500,001" or "700,000" are one in 100,000 under uniform
    sampling, yet they are what people type.
    """
    if not 0 <= low < high <= MAX_NUMBER + 1:
        raise ValueError(f"sample_numbers: need 0 <= low < high <= {MAX_NUMBER + 1:,}, got {low}, {high}")
    bands = []  # [start, end) of each digit count within the range
    for d in range(1, 10):
        start, end = max(low, 0 if d == 1 else 10 ** (d - 1)), min(high, 10**d)
        if start < end:
            bands.append((start, end))
    starts, ends = np.array(bands).T
    band = rng.integers(0, len(bands), n)  # (n,)
    numbers = starts[band] + (rng.random(n) * (ends[band] - starts[band])).astype(np.int64)  # (n,)
    for place in 10 ** np.arange(len(str(high - 1)) - 1):  # ones, tens, ...: every digit but the leading one
        digit = numbers // place % 10
        zeroed = numbers - digit * place
        keep = (rng.random(n) < zero_rate) & (numbers >= 10 * place) & (zeroed >= starts[band])
        numbers = np.where(keep, zeroed, numbers)
    return numbers


class NumberTranslation:
    """Numbers <-> English words, with a test split held out from training.

    ``direction``: "to_words" ("4,213" -> "four thousand two hundred thirteen")
    or "to_digits" (the reverse). Training numbers come from ``train_range``
    [low, high) through ``sample_numbers``; the ``test_size`` test numbers are
    drawn once (seeded by ``seed``), without repeats, uniformly from
    ``test_range`` (default: the training range), and ``sample_train`` never
    returns one of them.
    """

    def __init__(self, direction="to_words", train_range=(0, 1_000_000), test_range=None, test_size=2000, seed=0):
        if direction not in DIRECTIONS:
            raise ValueError(f"NumberTranslation: direction must be one of {DIRECTIONS}, got {direction!r}")
        self.direction, self.seed = direction, seed
        self.train_range = tuple(int(v) for v in train_range)
        self.test_range = self.train_range if test_range is None else tuple(int(v) for v in test_range)
        low, high = self.test_range
        if not 0 < test_size <= (high - low) // 2:
            raise ValueError(
                f"NumberTranslation: test_size must be in [1, half the test range = {(high - low) // 2}], got {test_size}"
            )
        rng = np.random.default_rng([seed, 2024])
        self.test_numbers = np.sort(low + rng.choice(high - low, size=test_size, replace=False))  # (test_size,)
        self.sides = ("digits", "words") if direction == "to_words" else ("words", "digits")
        make = {"digits": digits_tokenizer, "words": words_tokenizer}
        self.source_tokenizer, self.target_tokenizer = make[self.sides[0]](), make[self.sides[1]]()

    def sample_train(self, rng, n):
        """``n`` training numbers: ``sample_numbers`` over the training range, test numbers redrawn."""
        numbers = sample_numbers(rng, n, *self.train_range)
        while True:
            held_out = np.isin(numbers, self.test_numbers)
            if not held_out.any():
                return numbers
            numbers[held_out] = sample_numbers(rng, int(held_out.sum()), *self.train_range)

    def texts(self, n):
        """(source text, target text) for the number ``n``."""
        pair = {"digits": format_number(n), "words": number_to_words(n)}
        return pair[self.sides[0]], pair[self.sides[1]]

    def encode_source(self, texts):
        """Source ids (B, S), each text followed by <eos> and padded with <pad>=0."""
        tok = self.source_tokenizer
        return pad([tok.encode(t) + [tok.eos_id] for t in texts])[0]

    def batch(self, numbers):
        """Model inputs for ``numbers``: src (B, S), tgt_in = <bos> target (B, T), tgt_out = target <eos> (B, T)."""
        sources, targets = zip(*(self.texts(n) for n in numbers))
        tok = self.target_tokenizer
        ids = [tok.encode(t) for t in targets]
        tgt_in = pad([[tok.bos_id] + t for t in ids])[0]  # (B, T), padded with <pad>=0
        tgt_out = pad([t + [tok.eos_id] for t in ids])[0]  # (B, T)
        return self.encode_source(sources), tgt_in, tgt_out

    def decode_target(self, ids) -> str:
        """Target text from ids, stopping at the first <eos> and skipping <pad>/<bos>."""
        tok, words = self.target_tokenizer, []
        for i in ids:
            if i == tok.eos_id:
                break
            if i not in (tok.pad_id, tok.bos_id):
                words.append(tok.words[i])
        return detokenize(words, self.sides[1])

    def normalise_source(self, text) -> str:
        """What a user typed, in the form the model was trained on ("4213" -> "4,213"); a ValueError if it is
        not a number, or one outside the training and test ranges (the model knows nothing beyond them)."""
        n = parse_number(text) if self.sides[0] == "digits" else words_to_number(text)
        low = min(self.train_range[0], self.test_range[0])
        high = max(self.train_range[1], self.test_range[1])
        if not low <= n < high:
            raise ValueError(f"NumberTranslation: {text!r} is outside the numbers this task covers, "
                             f"{low:,} to {high - 1:,}")
        return self.texts(n)[0]

    def to_dict(self):
        return {"direction": self.direction, "train_range": list(self.train_range),
                "test_range": list(self.test_range), "test_size": len(self.test_numbers), "seed": self.seed}



class NumberPairs:
    """The training batches of a ``NumberTranslation``: ``batch_size`` fresh numbers every batch (never a test
    number), as ``(src, tgt_in, tgt_out)``; a batch source for ``tinytransformer.training.Trainer``."""

    def __init__(self, task, batch_size):
        self.task, self.batch_size = task, batch_size

    def next_batch(self, rng):
        return self.task.batch(self.task.sample_train(rng, self.batch_size))  # (B, S), (B, T), (B, T)
