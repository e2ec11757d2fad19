"""A word-level tokenizer: one id per word of a vocabulary learned by counting, ``<unk>`` for the rest.

This is the tokenizer of the classic sentence classifiers and taggers (the
SST-2 and CoNLL setups): the text is cut into words, the ``vocab_size`` most
frequent training words (seen at least ``min_freq`` times) get an id each, and
every other word becomes ``<unk>``. Unlike characters or byte-level BPE, words
cannot cover every text, so ``decode(encode(s))`` gives back the words of ``s``
joined by single spaces, with the unknown ones replaced by ``<unk>``.

The first ids are reserved, in this order, for the special tokens:

    0 <pad>   fills a batch's short sequences up to the longest one
    1 <unk>   a word outside the vocabulary
    2 <cls>   a first token whose final state summarises a sentence for a classifier
    3 <bos>   the beginning of a sequence, for a language model
    4 <eos>   the end of a sequence

A tokenizer may reserve more: ``extra_specials`` (given to ``train``) come
next, in their order, from id 5 on; a masked language model's ``<mask>``
(BERT's [MASK]) is one. Without them, ids and behaviour are those of every
word tokenizer before the option existed.

Words come from the regular expression ``pattern`` (``re.findall``); the
default ``\\S+`` splits on whitespace, which suits already-tokenised text such
as SST-2's. Pre-tokenised sentences (lists of words, as in CoNLL tagging
files) go through ``encode_words``, one id per word, so ids stay aligned
with tags.
"""

import re
from collections import Counter

from .tokenizers import Tokenizer

SPECIALS = ("<pad>", "<unk>", "<cls>", "<bos>", "<eos>")
WHITESPACE_PATTERN = r"\S+"


class WordTokenizer(Tokenizer):
    """``words[i]`` is the word of id ``i``; the first ``len(SPECIALS)`` are the special tokens.

    ``WordTokenizer.train(texts, vocab_size=..., min_freq=..., lower=...)``
    counts the words; ``WordTokenizer(words)`` takes a vocabulary as given.
    With ``lower=True`` every word is lower-cased before it is counted or
    looked up, so "The" and "the" share an id. ``special_ids`` maps each
    special token, ``extra_specials`` included, to its id.
    """

    kind = "word"
    pad_id, unk_id, cls_id, bos_id, eos_id = range(len(SPECIALS))

    def __init__(self, words, lower: bool = False, pattern: str = WHITESPACE_PATTERN, extra_specials=()):
        words = list(words)
        extra = tuple(extra_specials)
        if isinstance(extra_specials, str) or not all(isinstance(w, str) and w for w in extra) \
                or set(extra) & set(SPECIALS):
            raise ValueError(f"WordTokenizer: extra_specials must be a list of non-empty strings other than "
                             f"{SPECIALS}, got {extra_specials!r}")
        specials = SPECIALS + extra
        if tuple(words[: len(specials)]) != specials:
            raise ValueError(f"WordTokenizer: the vocabulary must start with the special tokens {specials}, "
                             f"got {words[: len(specials)]}")
        if len(set(words)) != len(words):
            duplicate = next(w for w, n in Counter(words).items() if n > 1)
            raise ValueError(f"WordTokenizer: the vocabulary holds {duplicate!r} more than once")
        self.words = words
        self.lower = bool(lower)
        self.pattern = pattern
        self._split = re.compile(pattern)
        self.stoi = {w: i for i, w in enumerate(words)}
        self.extra_specials = extra
        self.special_ids = {w: i for i, w in enumerate(specials)}

    @classmethod
    def train(cls, texts, vocab_size=None, min_freq: int = 1, lower: bool = False,
              pattern: str = WHITESPACE_PATTERN, extra_specials=()) -> "WordTokenizer":
        """The vocabulary of the most frequent words of ``texts`` (strings, or lists of words).

        ``vocab_size`` counts the special tokens too (``None``: no limit); a word
        seen fewer than ``min_freq`` times is left out. Equally frequent words
        are ordered alphabetically, so training is deterministic.
        ``extra_specials`` (e.g. ``("<mask>",)``) get the ids after the five
        special tokens, the words come after them.
        """
        specials = SPECIALS + tuple(extra_specials)
        if vocab_size is not None and (isinstance(vocab_size, bool) or not isinstance(vocab_size, int)
                                       or vocab_size < len(specials)):
            raise ValueError(f"WordTokenizer.train: vocab_size must be None or an int >= {len(specials)} "
                             f"(the special tokens), got {vocab_size!r}")
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"WordTokenizer.train: min_freq must be an int >= 1, got {min_freq!r}")
        if isinstance(texts, str):
            raise TypeError("WordTokenizer.train: texts must be a list of strings (or of word lists), "
                            "not one string")
        tokenizer = cls(specials, lower=lower, pattern=pattern, extra_specials=extra_specials)
        counts = Counter()
        for text in texts:
            counts.update(tokenizer.split(text) if isinstance(text, str) else tokenizer._normalise(text))
        ranked = sorted((w for w, n in counts.items() if n >= min_freq and w not in specials),
                        key=lambda w: (-counts[w], w))
        if vocab_size is not None:
            ranked = ranked[: vocab_size - len(specials)]
        return cls([*specials, *ranked], lower=lower, pattern=pattern, extra_specials=extra_specials)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def _normalise(self, words) -> list:
        return [w.lower() for w in words] if self.lower else list(words)

    def split(self, text: str) -> list:
        """The words of ``text``: the matches of ``pattern``, lower-cased if ``lower``."""
        if not isinstance(text, str):
            raise TypeError(f"WordTokenizer.split: text must be a str, got {type(text).__name__}; "
                            "use encode_words for a list of words")
        return self._normalise(self._split.findall(text))

    def encode_words(self, words) -> list:
        """One id per word of an already tokenised sentence; ``<unk>`` for unknown words."""
        if isinstance(words, str):
            raise TypeError("WordTokenizer.encode_words: words must be a list of words, not a str; "
                            "use encode for text")
        return [self.stoi.get(w, self.unk_id) for w in self._normalise(words)]

    def encode(self, text: str) -> list:
        return self.encode_words(self.split(text))

    def decode(self, ids) -> str:
        return " ".join(self.words[i] for i in self._check_ids(ids))

    def to_dict(self) -> dict:
        extra = {"extra_specials": list(self.extra_specials)} if self.extra_specials else {}
        return {"type": self.kind, "lower": self.lower, "pattern": self.pattern, "words": self.words, **extra}

    @classmethod
    def from_dict(cls, d: dict) -> "WordTokenizer":
        return cls(d["words"], lower=d.get("lower", False), pattern=d.get("pattern", WHITESPACE_PATTERN),
                   extra_specials=d.get("extra_specials", ()))

    def __repr__(self):
        return f"WordTokenizer(vocab_size={self.vocab_size}, lower={self.lower})"
