"""Byte-level byte-pair encoding (BPE), the tokenizer family of GPT-2, trained from scratch.

The base vocabulary is the 256 byte values, so any text can be encoded: it is
first turned into UTF-8 bytes. Training then repeats one step (Sennrich et al.
2016, "Neural Machine Translation of Rare Words with Subword Units"; byte-level
as in Radford et al. 2019, GPT-2):

    find the most frequent pair of adjacent ids (a, b) in the training text,
    give it a new id 256 + k, and replace every occurrence of (a, b) by it.

After ``vocab_size - 256`` steps the list of merges *is* the tokenizer. Encoding
replays them: in a chunk of bytes, merge the adjacent pair that was learned
earliest, until no learned pair is left. Decoding concatenates each id's bytes.

A tokenizer may also reserve ``specials``, ids after the merges that no text
encodes to (as GPT-2's ``<|endoftext|>`` is id 50256): a masked language model's
``<pad>``, ``<cls>``, ``<eos>`` and ``<mask>``. Without them, ids and behaviour
are those of every BPE tokenizer before the option existed.

As in GPT-2, the text is first split into word-like chunks (a letter run with
its leading space, a digit run, a punctuation run, whitespace) and merges never
cross a chunk boundary, so "dog." and "dog!" share the token " dog". Training
counts each distinct chunk once, with its frequency, and after a merge updates
the pair counts of only the chunks that contained the merged pair: that keeps
training on a megabyte of text to a few seconds in pure Python.
"""

import heapq
import re
from collections import Counter, defaultdict

from ..validation import check_value
from .tokenizers import Tokenizer

# GPT-2's pre-tokenizer, with the stdlib's classes: [^\W\d_] is a letter, \d a digit,
# [^\s\w]|_ anything else that is not whitespace. Every character falls in one class, so
# the chunks always add up to the whole text.
SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""


def merge_pair(ids: list, pair: tuple, new_id: int) -> list:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids``, left to right, by ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer(Tokenizer):
    """Byte-level BPE: ``merges[k] = (a, b)`` means id ``256 + k`` stands for id ``a`` followed by id ``b``.

    ``BPETokenizer.train(text, vocab_size)`` learns the merges; ``BPETokenizer()``
    with no merges encodes text as its raw UTF-8 bytes. ``vocab[i]`` is the bytes
    id ``i`` stands for. ``decode(encode(s)) == s`` for every string; an arbitrary
    id sequence may cut a character's UTF-8 bytes apart, and such bytes decode
    to U+FFFD. ``special_ids`` maps each of ``specials`` to its id (after the
    merges); such an id decodes to the special's name.
    """

    kind = "bpe"

    def __init__(self, merges=(), pattern: str = SPLIT_PATTERN, specials=()):
        self.merges = [tuple(int(i) for i in pair) for pair in merges]
        self.pattern = pattern
        self._split = re.compile(pattern)
        self.vocab = [bytes([b]) for b in range(256)]
        for k, (a, b) in enumerate(self.merges):
            if not (0 <= a < len(self.vocab) and 0 <= b < len(self.vocab)):
                raise ValueError(f"BPETokenizer: merge {k} joins ({a}, {b}), but only ids below {len(self.vocab)} exist")
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self.specials = tuple(specials)
        if isinstance(specials, str) or not all(isinstance(w, str) and w for w in self.specials) \
                or len(set(self.specials)) != len(self.specials):
            raise ValueError(f"BPETokenizer: specials must be a list of distinct non-empty strings, got {specials!r}")
        self.special_ids = {name: len(self.vocab) + i for i, name in enumerate(self.specials)}
        self.vocab += [name.encode("utf-8") for name in self.specials]
        self.ranks = {pair: k for k, pair in enumerate(self.merges)}
        self._cache = {}  # chunk -> ids: real text repeats the same words over and over

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str = SPLIT_PATTERN, specials=()) -> "BPETokenizer":
        """Learn ``vocab_size - 256 - len(specials)`` merges from ``text`` (fewer if the text runs out of pairs).

        Ties between equally frequent pairs go to the smaller pair ``(a, b)``, so
        training is deterministic, and training to a smaller ``vocab_size`` gives
        a prefix of the same merges.
        """
        vocab_size = check_value("BPETokenizer.train: vocab_size", vocab_size, int,  # 256: the bytes
                                 f"[{256 + len(specials)}, inf)") - len(specials)
        chunk_counts = Counter(re.findall(pattern, text))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        freqs = list(chunk_counts.values())

        pair_counts = Counter()        # (a, b) -> occurrences in the whole text
        where = defaultdict(set)       # (a, b) -> indices of words that contain (or once contained) it
        for w, word in enumerate(words):
            for pair in zip(word, word[1:]):
                pair_counts[pair] += freqs[w]
                where[pair].add(w)
        # a max-heap by (count, then smallest pair); entries whose count has since changed are skipped
        heap = [(-n, pair) for pair, n in pair_counts.items()]
        heapq.heapify(heap)

        merges = []
        while len(merges) < vocab_size - 256 and heap:
            neg_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair) != -neg_count:
                continue
            new_id = 256 + len(merges)
            merges.append(pair)
            changed = set()
            for w in where.pop(pair):
                old, new = words[w], merge_pair(words[w], pair, new_id)
                delta = Counter()
                for p in zip(old, old[1:]):
                    delta[p] -= freqs[w]
                for p in zip(new, new[1:]):
                    delta[p] += freqs[w]
                    where[p].add(w)
                for p, d in delta.items():
                    if d:
                        pair_counts[p] += d
                        changed.add(p)
                words[w] = new
            for p in changed:
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
                else:
                    del pair_counts[p]
        return cls(merges, pattern, specials)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _encode_chunk(self, chunk: str) -> list:
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            # the learned pair with the lowest rank (earliest merge) goes first, as in training
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if pair not in self.ranks:
                break
            ids = merge_pair(ids, pair, 256 + self.ranks[pair])
        return ids

    def encode(self, text: str) -> list:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(
                f"BPETokenizer.encode: character U+{ord(text[err.start]):04X} at index {err.start} is a lone "
                "surrogate, which UTF-8 cannot encode"
            ) from None
        if len(self._cache) > 100_000:
            self._cache.clear()
        ids = []
        for chunk in self._split.findall(text):
            if chunk not in self._cache:
                self._cache[chunk] = self._encode_chunk(chunk)
            ids.extend(self._cache[chunk])
        return ids

    def decode(self, ids) -> str:
        return b"".join(self.vocab[i] for i in self._check_ids(ids)).decode("utf-8", errors="replace")

    def to_dict(self) -> dict:
        specials = {"specials": list(self.specials)} if self.specials else {}
        return {"type": self.kind, "pattern": self.pattern, "merges": [list(pair) for pair in self.merges], **specials}

    @classmethod
    def from_dict(cls, d: dict) -> "BPETokenizer":
        return cls(d["merges"], d.get("pattern", SPLIT_PATTERN), d.get("specials", ()))

    def __repr__(self):
        return f"BPETokenizer(vocab_size={self.vocab_size})"
