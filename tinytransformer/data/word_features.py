"""What a tagger sees of each word besides its id: its shape, its characters, its sub-word pieces.

A word vocabulary learned from 3,400 tweets (WNUT-17) misses most of the test
set's names, and a missed word is one <unk> vector. Three views that do not
need the word to be known (Lample et al. 2016; Ma & Hovy 2016; Aguilar et al.
2017 for WNUT-17):

    word_shape_features("@Obama")  -> a fixed vector of yes/no facts about the spelling  (SHAPE_FEATURES)
    CharVocab.train(words).encode_words(words, max_len)  -> character ids (n, L), 0 = padding
    word_pieces(tokenizer, words)  -> the sub-word token ids of each word (BPE), for pooling per word

``tagging_batch`` puts one batch of sentences together: every view padded to a
(B, T, ...) array and the word mask (B, T), True at real words (the CRF's
convention), with the tags, if given, ``IGNORE_INDEX`` at the padding.
"""

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .encoding import IGNORE_INDEX, encode_words
from .word_tokenizer import WordTokenizer

SHAPE_FEATURES = (
    "capitalised", "all_caps", "all_lower", "has_digit", "all_digits", "at_mention", "hashtag", "url",
    "has_punctuation", "all_punctuation", "non_ascii", "length_1", "length_2_4", "length_5_9", "length_10_plus",
)
URL = re.compile(r"^(https?://|www\.)|\.(com|org|net|gov|edu|co|ly|io|me|tv)(/|$)", re.IGNORECASE)
PUNCTUATION = re.compile(r"[^\w\s]")


def word_shape_features(word: str) -> np.ndarray:
    """Facts about how ``word`` is spelt, as 0/1 floats (float32), in the order of ``SHAPE_FEATURES``:

    capitalised      first letter upper-case ("Obama", "NASA", "@Obama", "2Pac")
    all_caps         every letter upper-case, at least one letter ("NASA", "U.S.")
    all_lower        every letter lower-case, at least one letter
    has_digit        at least one digit ("2nd"); all_digits: digits only ("2017")
    at_mention       starts with @ (a Twitter user); hashtag: starts with #
    url              starts with http://, https:// or www., or contains a domain ending such as .com/
    has_punctuation  at least one character neither a letter, digit, underscore nor space;
                     all_punctuation: nothing else (",", "...", ":)")
    non_ascii        a character outside ASCII (accents, emoji)
    length_*         one-hot length bucket: 1, 2-4, 5-9, 10 or more characters
    """
    if not isinstance(word, str) or not word:
        raise ValueError(f"word_shape_features: word must be a non-empty str, got {word!r}")
    letters = [c for c in word if c.isalpha()]
    n = len(word)
    facts = (
        bool(letters) and letters[0].isupper(),
        bool(letters) and all(c.isupper() for c in letters),
        bool(letters) and all(c.islower() for c in letters),
        any(c.isdigit() for c in word),
        word.isdigit(),
        word.startswith("@"),
        word.startswith("#"),
        bool(URL.search(word)),
        bool(PUNCTUATION.search(word)),
        all(PUNCTUATION.match(c) for c in word),
        not word.isascii(),
        n == 1, 2 <= n <= 4, 5 <= n <= 9, n >= 10,
    )
    return np.array(facts, dtype=np.float32)


def word_shapes(words) -> np.ndarray:
    """``word_shape_features`` of each word, (n, len(SHAPE_FEATURES))."""
    return np.stack([word_shape_features(w) for w in words]).reshape(len(words), len(SHAPE_FEATURES))


class CharVocab:
    """Character ids for a character-level word encoder: 0 is padding, 1 an unseen character.

    ``CharVocab.train(words, min_freq)`` keeps the characters seen at least
    ``min_freq`` times, most frequent first (ties in character order), after
    the two reserved ids. Case is kept: "Apple" and "apple" differ here, which
    is much of what the characters tell a tagger.
    """

    pad_id, unk_id = 0, 1
    SPECIALS = ("<pad>", "<unk>")

    def __init__(self, chars):
        chars = list(chars)
        if len(set(chars)) != len(chars) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("CharVocab: chars must be distinct single characters")
        self.chars = chars
        self.stoi = {c: i + len(self.SPECIALS) for i, c in enumerate(chars)}

    @classmethod
    def train(cls, words, min_freq: int = 1) -> "CharVocab":
        """The characters of ``words`` (a list of words, or of sentences as word lists)."""
        if isinstance(words, str):
            raise TypeError("CharVocab.train: words must be a list of words (or of word lists), not one str")
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"CharVocab.train: min_freq must be an int >= 1, got {min_freq!r}")
        counts = Counter()
        for item in words:
            counts.update("".join(item) if not isinstance(item, str) else item)
        return cls(sorted((c for c, n in counts.items() if n >= min_freq), key=lambda c: (-counts[c], c)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + len(self.SPECIALS)

    def encode(self, word: str) -> list:
        return [self.stoi.get(c, self.unk_id) for c in word]

    def encode_words(self, words, max_len: int) -> np.ndarray:
        """Character ids of each word, cut to ``max_len`` and right-padded with 0: (len(words), max_len)."""
        out = np.zeros((len(words), max_len), dtype=np.int64)
        for i, word in enumerate(words):
            ids = self.encode(word)[:max_len]
            out[i, :len(ids)] = ids
        return out

    def to_dict(self) -> dict:
        return {"type": "char_vocab", "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> "CharVocab":
        return cls(d["chars"])

    def __repr__(self):
        return f"CharVocab(vocab_size={self.vocab_size})"


def word_pieces(tokenizer, words) -> list:
    """The token ids of each word (a list per word) as ``encoding.encode_words`` cuts them, without its
    <bos>: one id per word for a ``WordTokenizer``, one or more sub-word ids for BPE."""
    ids, ends = encode_words(tokenizer, words)
    starts = [1 if isinstance(tokenizer, WordTokenizer) else 0] + [end + 1 for end in ends[:-1]]
    return [ids[start:end + 1] for start, end in zip(starts, ends)]


@dataclass
class TaggerBatch:
    """One batch of B sentences of at most T words, every array padded on the right.

    mask        (B, T) bool, True at real words (the CRF's convention)
    pieces      (B, T, P) int64 token ids of each word, with piece_mask (B, T, P) True at real pieces; or None
    chars       (B, T, L) int64 character ids, 0 = padding; or None
    shapes      (B, T, len(SHAPE_FEATURES)) float32; or None
    tags        (B, T) int64 tag ids, IGNORE_INDEX at padding; or None (prediction)
    extra       (B, T, D) any further per-word features (a pretrained encoder's per-word states); or None
    """

    mask: np.ndarray
    pieces: np.ndarray = None
    piece_mask: np.ndarray = None
    chars: np.ndarray = None
    shapes: np.ndarray = None
    tags: np.ndarray = None
    extra: object = None

    @property
    def lengths(self) -> np.ndarray:
        return self.mask.sum(axis=1)


def _padded(rows, width, fill, dtype, tail=()):
    """Rows of different lengths (each an array (n_i,) + tail) as one (B, width) + tail array."""
    out = np.full((len(rows), width) + tail, fill, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def tagging_batch(sentences, tags=None, tokenizer=None, char_vocab=None, shapes=True, max_word_len=20,
                  tag_ids=None) -> TaggerBatch:
    """A ``TaggerBatch`` of ``sentences`` (lists of words), each view present when asked for.

    ``tokenizer`` (a word or BPE tokenizer) gives ``pieces``; ``char_vocab`` gives
    ``chars``, each word cut to ``max_word_len`` characters and the batch padded to
    its longest word; ``shapes=True`` gives the shape features. ``tags`` are lists of
    tag ids, or of tag strings with ``tag_ids`` mapping them to ids.
    """
    sentences = [list(s) for s in sentences]
    if not sentences or not all(sentences):
        raise ValueError("tagging_batch: needs at least one sentence, and every sentence at least one word")
    lengths = [len(s) for s in sentences]
    T = max(lengths)
    batch = TaggerBatch(mask=np.arange(T) < np.array(lengths)[:, None])  # (B, T)
    if tokenizer is not None:
        pieces = [word_pieces(tokenizer, s) for s in sentences]
        P = max(len(p) for s in pieces for p in s)
        batch.pieces = _padded([_padded(s, P, 0, np.int64) for s in pieces], T, 0, np.int64, (P,))  # (B, T, P)
        counts = [[len(p) for p in s] for s in pieces]
        batch.piece_mask = np.arange(P) < _padded(counts, T, 0, np.int64)[:, :, None]  # (B, T, P)
    if char_vocab is not None:
        L = min(max_word_len, max(len(w) for s in sentences for w in s))
        batch.chars = _padded([char_vocab.encode_words(s, L) for s in sentences], T, 0, np.int64, (L,))  # (B, T, L)
    if shapes:
        batch.shapes = _padded([word_shapes(s) for s in sentences], T, 0, np.float32, (len(SHAPE_FEATURES),))
    if tags is not None:
        if [len(t) for t in tags] != lengths:
            raise ValueError("tagging_batch: every sentence needs exactly one tag per word")
        ids = [[tag_ids[t] for t in row] if tag_ids is not None else list(row) for row in tags]
        batch.tags = _padded(ids, T, IGNORE_INDEX, np.int64)  # (B, T)
    return batch
