"""Tokenizers turn text into integer ids and back; this file holds their shared interface and the simplest one.

Every tokenizer has ``encode(text) -> list[int]``, ``decode(ids) -> str``,
``vocab_size``, and travels as a plain dict (``to_dict``/``from_dict``, so a
checkpoint can embed it) or as a JSON file (``save``/``load``).
``tokenizer_from_dict`` rebuilds whichever kind a dict describes.

``CharTokenizer`` gives each distinct character of its training text one id,
in sorted order (the char-rnn / nanoGPT Shakespeare tokenizer). The byte-level
BPE tokenizer is in ``bpe.py``.
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np


class Tokenizer:
    """The interface every tokenizer shares. Subclasses set ``kind``, the tag their dicts carry."""

    kind = None
    _kinds = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Tokenizer._kinds[cls.kind] = cls

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> list:
        raise NotImplementedError

    def decode(self, ids) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        raise NotImplementedError

    def save(self, path) -> None:
        """Write ``to_dict()`` as JSON, atomically (a temp file beside ``path``, then ``os.replace``)."""
        path = Path(path)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f)
            os.replace(tmp_name, path)
        finally:
            if os.path.exists(tmp_name):
                os.remove(tmp_name)

    @classmethod
    def load(cls, path) -> "Tokenizer":
        """Read a tokenizer saved by ``save``; ``Tokenizer.load`` accepts any kind, a subclass only its own."""
        with open(path, encoding="utf-8") as f:
            tokenizer = tokenizer_from_dict(json.load(f))
        if not isinstance(tokenizer, cls):
            raise ValueError(f"{cls.__name__}.load: {path} holds a {type(tokenizer).__name__}")
        return tokenizer

    def _check_ids(self, ids) -> list:
        """``ids`` as a list of Python ints, each in ``[0, vocab_size)``, or a ValueError naming the bad one."""
        ids = np.asarray(ids)
        name = f"{type(self).__name__}.decode"
        if ids.size == 0:
            return []
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"{name}: ids must be a 1-D sequence of integers, got shape {ids.shape} of {ids.dtype}")
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name}: id {ids[i]} at position {i} is outside the vocabulary [0, {self.vocab_size})")
        return ids.tolist()


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Rebuild a tokenizer from ``to_dict()`` output, whatever its kind (``d["type"]``)."""
    kind = d.get("type") if isinstance(d, dict) else None
    if kind not in Tokenizer._kinds:
        raise ValueError(f"tokenizer_from_dict: unknown tokenizer type {kind!r}; known: {sorted(Tokenizer._kinds)}")
    return Tokenizer._kinds[kind].from_dict(d)


class CharTokenizer(Tokenizer):
    """One id per distinct character of the training text, in sorted order.

    A character the training text did not contain has no id: ``encode`` raises
    a ValueError naming it (and its position) rather than guessing, because a
    language model cannot predict a symbol it has never seen. Build the
    tokenizer from a text that covers every character you will encode.
    """

    kind = "char"

    def __init__(self, chars):
        chars = list(chars)
        if len(set(chars)) != len(chars) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("CharTokenizer: chars must be distinct single characters")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """The tokenizer whose vocabulary is the sorted set of characters of ``text``."""
        return cls(sorted(set(text)))

    @classmethod
    def train(cls, text: str) -> "CharTokenizer":
        """Same as ``from_text``: the name every tokenizer shares."""
        return cls.from_text(text)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            c = err.args[0]
            raise ValueError(
                f"CharTokenizer.encode: character {c!r} (U+{ord(c):04X}) at index {text.index(c)} is not in the "
                f"vocabulary of {self.vocab_size} characters; build the tokenizer from a text that contains it"
            ) from None

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in self._check_ids(ids))

    def to_dict(self) -> dict:
        return {"type": self.kind, "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        return cls(d["chars"])

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"
