r"""GPT-2's own tokenizer, read from its files (``vocab.json``, ``merges.txt``) and written back.

GPT-2 (Radford et al. 2019) is byte-level BPE, the algorithm of ``bpe.py``; its files add three conventions:

1. A token is a string, not bytes: each of the 256 byte values is shown as one printable character
   (``bytes_to_unicode``): printable ASCII and Latin-1 bytes as themselves, the other 68 (space,
   newline, control bytes, ...) as the characters from U+0100 on. So " the" is the token "Ġthe":
   Ġ (U+0120) stands for the space byte 0x20.
2. ``vocab.json`` maps each token string to its id; ``merges.txt`` lists the merges, one
   "left right" pair per line in the order they were learned: a merge's line is its rank.
3. The text is first split into chunks by GPT-2's regular expression

       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+

   (a contraction, a letter run, a number run or a run of anything else, each with at most one
   leading space; whitespace), whose Unicode classes \p{L} and \p{N} Python's ``re`` lacks:
   ``gpt2_split_pattern`` spells them with the standard library.

Encoding a chunk (OpenAI's encoder.py): its UTF-8 bytes as characters, then, as long as some
adjacent pair is a merge, join every occurrence of the pair of lowest rank, left to right; each
resulting string's id is read from ``vocab.json``. Special tokens (GPT-2's ``<|endoftext|>``) are cut out of the text
first and become their own id, as the reference (Hugging Face's ``GPT2TokenizerFast``) does.
Decoding joins the tokens' bytes and reads them as UTF-8 (a cut character becomes U+FFFD).
"""

import functools
import json
import os
import re
import tempfile
import unicodedata
from pathlib import Path

from .bpe import merge_pair
from .tokenizers import Tokenizer

END_OF_TEXT = "<|endoftext|>"  # GPT-2's one special token, id 50256: it separates documents
MAX_FILE_BYTES = 64 * 2**20  # GPT-2's vocab.json is 1 MB; a larger file is not a tokenizer's


def bytes_to_unicode() -> dict:
    """byte value -> the printable character that stands for it in GPT-2's files (OpenAI's encoder.py)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in table]  # space, control bytes, ...: shifted past U+00FF
    table.update({b: chr(256 + n) for n, b in enumerate(others)})
    return dict(sorted(table.items()))


@functools.cache  # built on first use: scanning Unicode's 1.1M code points takes about 0.1 s
def gpt2_split_pattern() -> str:
    r"""GPT-2's pre-tokenization pattern in Python's ``re``.

    Python's \w is letters, digits, underscore and every other "numeric" character, and \d only
    the decimal digits (Nd). So, with NUMBERS the numbers that are not digits (categories Nl, No:
    Ⅻ, ², ½, ①), which \p{N} holds and \d does not:

        \p{L} = [^\W\d_NUMBERS]     \p{N} = [\dNUMBERS]     [^\s\p{L}\p{N}] = [^\s\w] or _

    and \s is Python's less U+001C..U+001F, four "separators" Python counts as whitespace and
    Unicode's White_Space does not. Compared with the reference on every code point Python's Unicode
    tables know when written (tests/data/test_gpt2_tokenizer.py repeats it on a sample); characters
    newer than those tables (``unicodedata.unidata_version``) fall in the "anything else" class.
    """
    numbers = "".join(c for c in map(chr, range(0x110000)) if unicodedata.category(c) in ("Nl", "No"))
    space, not_space = r"[^\S\x1c-\x1f]", r"[\S\x1c-\x1f]"
    return (rf"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_{numbers}]+| ?[\d{numbers}]+| ?(?:[^\s\w]|[_\x1c-\x1f])+"""
            rf"""|{space}+(?!{not_space})|{space}+""")


class GPT2Tokenizer(Tokenizer):
    """GPT-2's byte-level BPE: ``vocab`` (token string -> id, ids 0..n-1) and ``merges`` (pairs of token
    strings, in rank order).

    ``special_tokens`` are matched whole in the text before it is split (default: ``<|endoftext|>``
    when the vocabulary has it). ``from_files`` reads GPT-2's files, ``save_files`` writes them,
    ``from_bpe`` converts a ``BPETokenizer`` trained by this library.
    """

    kind = "gpt2"

    def __init__(self, vocab: dict, merges, special_tokens=None):
        if not isinstance(vocab, dict) or not all(isinstance(t, str) and type(i) is int for t, i in vocab.items()):
            raise ValueError("GPT2Tokenizer: vocab must map token strings to integer ids")
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError(f"GPT2Tokenizer: the {len(vocab)} ids in vocab must be 0..{len(vocab) - 1}, each once")
        self.encoder = dict(vocab)  # token string -> id
        self.decoder = {i: t for t, i in vocab.items()}  # id -> token string
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        missing = [c for c in self.byte_encoder.values() if c not in vocab]
        if missing:
            raise ValueError(f"GPT2Tokenizer: vocab lacks {len(missing)} of the 256 byte tokens (first: "
                             f"{missing[0]!r}); byte-level BPE needs all of them, so that every text can be encoded")
        self.merges = []
        for k, pair in enumerate(merges):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
                raise ValueError(f"GPT2Tokenizer: merge {k} must be a pair of token strings, got {pair!r}")
            for token in (*pair, pair[0] + pair[1]):
                if token not in vocab:
                    raise ValueError(f"GPT2Tokenizer: merge {k} ({pair[0]!r}, {pair[1]!r}) needs the token {token!r}, "
                                     "which is not in vocab")
            self.merges.append(tuple(pair))
        self.ranks = {pair: k for k, pair in enumerate(self.merges)}
        if special_tokens is None:
            special_tokens = [END_OF_TEXT] if END_OF_TEXT in vocab else []
        if not isinstance(special_tokens, (list, tuple)):
            raise ValueError(f"GPT2Tokenizer: special_tokens must be a list of tokens, got {special_tokens!r}")
        self.special_tokens = list(special_tokens)
        for token in self.special_tokens:
            if not isinstance(token, str) or token not in vocab:
                raise ValueError(f"GPT2Tokenizer: special token {token!r} is not in vocab")
        longest_first = sorted(self.special_tokens, key=len, reverse=True)
        self._specials = re.compile("(" + "|".join(map(re.escape, longest_first)) + ")") if longest_first else None
        self._split = re.compile(gpt2_split_pattern())
        # each id's bytes; a special token's (written as plain text, not byte characters) is its UTF-8
        self._bytes = [self._token_bytes(self.decoder[i]) for i in range(len(vocab))]
        self._cache = {}  # chunk -> ids: real text repeats the same words over and over

    def _token_bytes(self, token) -> bytes:
        if token in self.special_tokens or any(c not in self.byte_decoder for c in token):
            return token.encode("utf-8")
        return bytes(self.byte_decoder[c] for c in token)

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _encode_chunk(self, chunk: str) -> list:
        word = [self.byte_encoder[b] for b in chunk.encode("utf-8")]  # one character per byte
        while len(word) >= 2:
            pair = min(zip(word, word[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))  # the earliest merge
            if pair not in self.ranks:
                break
            word = merge_pair(word, pair, pair[0] + pair[1])
        return [self.encoder[token] for token in word]

    def encode(self, text: str) -> list:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(
                f"GPT2Tokenizer.encode: character U+{ord(text[err.start]):04X} at index {err.start} is a lone "
                "surrogate, which UTF-8 cannot encode"
            ) from None
        if len(self._cache) > 100_000:
            self._cache.clear()
        pieces = self._specials.split(text) if self._specials else [text]  # odd pieces: the special tokens
        ids = []
        for i, piece in enumerate(pieces):
            if i % 2:
                ids.append(self.encoder[piece])
                continue
            for chunk in self._split.findall(piece):
                if chunk not in self._cache:
                    self._cache[chunk] = self._encode_chunk(chunk)
                ids.extend(self._cache[chunk])
        return ids

    def decode(self, ids) -> str:
        return b"".join(self._bytes[i] for i in self._check_ids(ids)).decode("utf-8", errors="replace")

    def to_dict(self) -> dict:
        return {"type": self.kind, "vocab": self.encoder, "merges": [list(pair) for pair in self.merges],
                "special_tokens": self.special_tokens}

    @classmethod
    def from_dict(cls, d: dict) -> "GPT2Tokenizer":
        return cls(d["vocab"], d["merges"], d.get("special_tokens"))

    def __repr__(self):
        return f"GPT2Tokenizer(vocab_size={self.vocab_size})"

    # ------------------------------------------------------------------ GPT-2's files
    @classmethod
    def from_files(cls, vocab_json, merges_txt, special_tokens=None) -> "GPT2Tokenizer":
        """Read ``vocab.json`` and ``merges.txt``; a ValueError or FileNotFoundError names the file at fault."""
        vocab_json, merges_txt = Path(vocab_json), Path(merges_txt)
        try:
            vocab = json.loads(_read_text(vocab_json))
        except json.JSONDecodeError as err:
            raise ValueError(f"{vocab_json}: not valid JSON ({err})") from None
        if not isinstance(vocab, dict):
            raise ValueError(f"{vocab_json}: must hold a JSON object of token -> id, got a {type(vocab).__name__}")
        merges = []
        lines = _read_text(merges_txt).split("\n")
        for n, line in enumerate(lines[:-1] if lines[-1] == "" else lines, start=1):  # the file ends in a newline
            if line.startswith("#version"):
                continue
            pair = line.split(" ")
            if len(pair) != 2:
                raise ValueError(f"{merges_txt}: line {n} must be two tokens separated by one space, got {line!r}")
            merges.append(pair)
        try:
            return cls(vocab, merges, special_tokens)
        except ValueError as err:
            raise ValueError(f"{vocab_json.parent}: {vocab_json.name} and {merges_txt.name} do not make a tokenizer: "
                             f"{str(err).removeprefix('GPT2Tokenizer: ')}") from None

    @classmethod
    def from_folder(cls, folder) -> "GPT2Tokenizer":
        """``from_files`` on ``folder/vocab.json`` and ``folder/merges.txt``."""
        return cls.from_files(Path(folder) / "vocab.json", Path(folder) / "merges.txt")

    def save_files(self, folder) -> list:
        """Write ``vocab.json`` and ``merges.txt`` into ``folder`` (each atomically); returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        merges = "".join(f"{a} {b}\n" for a, b in self.merges)
        written = [folder / "vocab.json", folder / "merges.txt"]
        _write_text(written[0], json.dumps(self.encoder, ensure_ascii=False))
        _write_text(written[1], "#version: 0.2\n" + merges)
        return written

    @classmethod
    def from_bpe(cls, bpe) -> "GPT2Tokenizer":
        """The same tokenizer as a ``BPETokenizer`` in GPT-2's terms: id i keeps its number, its bytes become a string.

        A ``BPETokenizer``'s specials (ids after its merges that no text encodes to) become plain
        vocabulary entries, which no text encodes to either. Its pre-tokenization differs from
        GPT-2's on numbers that are not digits (² ½ Ⅻ, see ``gpt2_split_pattern``) and U+001C..U+001F:
        on text without them the two encode alike.
        """
        specials, table = set(bpe.special_ids.values()), bytes_to_unicode()
        tokens = [bpe.vocab[i].decode("utf-8") if i in specials else "".join(table[b] for b in bpe.vocab[i])
                  for i in range(bpe.vocab_size)]
        vocab = {}
        for i, token in enumerate(tokens):
            if token in vocab:
                raise ValueError(f"GPT2Tokenizer.from_bpe: ids {vocab[token]} and {i} both stand for "
                                 f"{bpe.vocab[i]!r}; GPT-2's vocab.json maps each token string to one id, so this "
                                 "tokenizer has no such form")
            vocab[token] = i
        return cls(vocab, [(tokens[a], tokens[b]) for a, b in bpe.merges], special_tokens=[])


def _read_text(path) -> str:
    """A tokenizer file's text (UTF-8), refusing one too large to be a tokenizer's before reading it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a GPT-2 tokenizer is vocab.json and merges.txt)")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size:,} bytes, too large for a tokenizer file "
                         f"(at most {MAX_FILE_BYTES:,})")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _write_text(path, text):
    """Write ``text`` to ``path`` atomically: a temporary file beside it, then ``os.replace``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
