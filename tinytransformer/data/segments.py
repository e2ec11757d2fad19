"""A corpus made into pretraining data: its tokenizer, the held-out split, and the batches of each objective.

    tok  = train_tokenizer(text, "word", 16384, masked=True)    words, and a masked LM's special tokens
    train, val = pretraining_data(text, tok, 128, 32, masked=True, by_document=True)   what `train` trains on

Next-token prediction (GPT, RNN, LSTM) reads one long stream of ids
(``encode_stream``), cut into random windows by the training loop. A masked
language model (BERT) reads segments of whole lines instead:

    train, val = held_out_documents(text)                 whole documents (or lines) held out at random
    segs = encode_segments(train, tok, block_size=128)    <cls> line line ... <eos>, at most 128 ids each
    data = MaskedSegments(segs, batch_size=32, tokenizer=tok)
    inputs, key_padding_mask, labels = data.next_batch(rng)   (B, T) each: BertForMaskedLM.masked_lm_loss's

The held-out split. A corpus such as the movie reviews is sorted (the negative
reviews, then the positive ones), so its last tenth would be one kind of text
only. ``held_out_documents`` holds out a tenth of its documents (blocks of
lines separated by a blank line), chosen by a permutation of a fixed seed
(``VAL_SEED``, not the run's seed: every run on a corpus validates on the
same documents). A text of one document splits its lines that way instead.
A masked language model always splits so; next-token prediction does for
``DOCUMENT_CORPORA`` (so a GPT and a BERT on the reviews validate on the same
ones), and elsewhere keeps the last 10% of the stream, as its numbers in
docs/ were measured. (The tokenizer is fitted to the whole text, as a char
tokenizer must be, to have an id for every character.)

The segments (Devlin et al. 2019, section 3.1 and A.2; without the next-sentence
task, as RoBERTa, Liu et al. 2019, found it does not help): the lines of each
document are packed, in order, into sequences of at most ``block_size`` ids,

    <cls> w w w ... w w <eos> <pad> <pad>        [CLS] ... [SEP] [PAD] in BERT's names

a segment never crossing into the next document, a line longer than a segment
cut into pieces. A batch is ``batch_size`` segments drawn at random (with
replacement, as ``TokenWindows`` draws windows), padded to the longest, then
corrupted by ``mask_tokens`` (15% of the real tokens, 80/10/10), afresh at every
draw ("dynamic masking", RoBERTa): special tokens and padding are never chosen.
Both the draw and the corruption use the generator handed to ``next_batch``, so
a batch is a function of that generator alone: the loop's checkpoint of it makes
a resumed run draw and mask exactly what the uninterrupted run would have, and
an evaluation's fixed generator gives the same masked batches every time.
"""

import numpy as np

from .batching import pad
from .bpe import BPETokenizer
from .datasets import train_val_split
from .masking import mask_tokens
from .tokenizers import CharTokenizer
from .word_tokenizer import WordTokenizer

TOKENIZERS = ("char", "bpe", "word")
VAL_FRACTION, VAL_SEED = 0.1, 0  # a tenth held out; the permutation that picks the held-out documents
DOCUMENT_CORPORA = ("movie_reviews",)  # sorted by label: next-token prediction holds out documents here too
# A masked language model's special tokens, BERT's [PAD], [CLS], [SEP], [MASK], by the names the library's
# tokenizers use, and those a tokenizer of each kind must add: a word tokenizer has all but <mask> already.
BERT_TOKENS = {"pad": "<pad>", "cls": "<cls>", "sep": "<eos>", "mask": "<mask>"}
MASK_TOKENS = {"word": ("<mask>",), "bpe": tuple(BERT_TOKENS.values())}


def documents(text) -> list:
    """The documents of a text: its blocks of non-blank lines, separated by blank lines; each a list of lines."""
    blocks = [[line for line in block.splitlines() if line.strip()] for block in text.split("\n\n")]
    return [block for block in blocks if block]


def held_out_documents(text, fraction=0.1, seed=VAL_SEED) -> tuple:
    """``(train_text, val_text)``: ``round(fraction * n)`` (at least one) of the text's ``n`` documents,
    chosen by a permutation seeded with ``seed``, held out whole; the rest, in their order, for training.
    A text of one document holds out its lines instead. Documents stay separated by a blank line."""
    docs = documents(text)
    units = docs if len(docs) > 1 else [[line] for line in (docs[0] if docs else [])]
    if len(units) < 2:
        raise ValueError(f"held_out_documents: the text has {len(units)} line{'s' * (len(units) != 1)}; a "
                         "training and a validation split need at least two")
    n_val = min(max(1, round(fraction * len(units))), len(units) - 1)
    held_out = set(np.random.default_rng(seed).permutation(len(units))[:n_val].tolist())
    join = "\n\n" if len(docs) > 1 else "\n"

    def text_of(keep):
        return join.join("\n".join(unit) for i, unit in enumerate(units) if (i in held_out) == keep) + "\n"

    return text_of(False), text_of(True)


def bert_special_ids(tokenizer) -> dict:
    """``{"pad": id, "cls": id, "sep": id, "mask": id}`` of a tokenizer trained with a masked language model's
    special tokens (``MASK_TOKENS``); a ValueError naming what is missing otherwise."""
    known = getattr(tokenizer, "special_ids", {})
    missing = [name for name in BERT_TOKENS.values() if name not in known]
    if missing:
        raise ValueError(f"{type(tokenizer).__name__} has no {', '.join(missing)}: a masked language model needs "
                         f"a word or BPE tokenizer trained with extra_specials/specials {MASK_TOKENS}")
    return {role: known[name] for role, name in BERT_TOKENS.items()}


def pack_segments(docs, block_size, cls_id, sep_id) -> list:
    """Lists of token ids per line, grouped by document (``docs``), packed into ``<cls> ... <eos>`` segments
    of at most ``block_size`` ids (module docstring); a list of 1-D int64 arrays."""
    if block_size < 3:
        raise ValueError(f"pack_segments: block_size must be at least 3 (<cls>, a token, <eos>), got {block_size}")
    room = block_size - 2
    segments = []
    for doc in docs:
        current = []
        for line in doc:
            for start in range(0, len(line), room):  # a line longer than a segment: its pieces
                piece = line[start:start + room]
                if current and len(current) + len(piece) > room:
                    segments.append(current)
                    current = []
                current.extend(piece)
        if current:
            segments.append(current)
    return [np.array([cls_id, *segment, sep_id], dtype=np.int64) for segment in segments]


def encode_segments(text, tokenizer, block_size) -> list:
    """The segments of ``text`` (``pack_segments`` of its documents' lines, each line encoded on its own)."""
    ids = bert_special_ids(tokenizer)
    docs = [[tokenizer.encode(line) for line in doc] for doc in documents(text)]
    return pack_segments(docs, block_size, ids["cls"], ids["sep"])


class MaskedSegments:
    """A masked-language-model batch source: ``next_batch(rng)`` is ``(inputs, key_padding_mask, labels)``,
    (B, T) each, ``batch_size`` random segments padded and corrupted (module docstring)."""

    def __init__(self, segments, batch_size, tokenizer, mask_prob=0.15):
        if not segments:
            raise ValueError("MaskedSegments: no segments (is the text empty?)")
        self.segments, self.batch_size, self.mask_prob = list(segments), batch_size, mask_prob
        self.ids = bert_special_ids(tokenizer)
        self.vocab_size = tokenizer.vocab_size
        self.special = sorted(tokenizer.special_ids.values())  # never chosen, never drawn as a random token
        self.tokens = np.concatenate(self.segments)

    def __len__(self):
        return len(self.segments)

    @property
    def tokens_per_batch(self) -> int:
        """Ids in an average batch, padding left out."""
        return round(self.batch_size * len(self.tokens) / len(self.segments))

    def next_batch(self, rng):
        rows = rng.integers(0, len(self.segments), self.batch_size)  # (B,)
        ids, key_padding_mask = pad([self.segments[i] for i in rows], fill=self.ids["pad"])  # (B, T) each
        inputs, labels = mask_tokens(ids, rng, self.vocab_size, self.ids["mask"], self.special, self.mask_prob)
        return inputs, key_padding_mask, labels  # (B, T) each


# ------------------------------------------------------------------ a run's data
def train_tokenizer(text, kind="char", vocab_size=512, masked=False):
    """A tokenizer fitted to ``text``: ``"char"`` (one id per distinct character), ``"bpe"`` (``vocab_size``
    ids) or ``"word"`` (the ``vocab_size`` most frequent words and the special tokens). ``masked``: with a
    masked language model's special tokens too (``MASK_TOKENS``), within ``vocab_size``."""
    if masked and kind not in MASK_TOKENS:
        raise ValueError(f"train_tokenizer: a masked language model needs a word or bpe tokenizer, not {kind!r}")
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size, specials=MASK_TOKENS["bpe"] if masked else ())
    if kind == "word":
        return WordTokenizer.train(text.splitlines(), vocab_size, extra_specials=MASK_TOKENS["word"] if masked else ())
    raise ValueError(f"train_tokenizer: kind must be one of {TOKENIZERS}, got {kind!r}")


def encode_stream(text, tokenizer):
    """A text as one stream of ids for next-token prediction: as it comes (char, BPE), or, with a word
    tokenizer, which has no newline, each line framed ``<bos> ... <eos>`` as fine-tuning frames a sentence."""
    if isinstance(tokenizer, WordTokenizer):
        lines = (line for line in text.splitlines() if line.strip())
        return np.asarray([i for line in lines for i in (tokenizer.bos_id, *tokenizer.encode(line),
                                                         tokenizer.eos_id)], dtype=np.int64)
    return np.asarray(tokenizer.encode(text), dtype=np.int64)


def pretraining_data(text, tokenizer, block_size, batch_size, masked=False, by_document=False) -> tuple:
    """``(train, val)``: a masked language model's ``MaskedSegments`` of held-out documents, or token ids for
    next-token prediction, the validation ids ``by_document`` (held-out documents) or the last 10%."""
    if masked:
        return tuple(MaskedSegments(encode_segments(part, tokenizer, block_size), batch_size, tokenizer)
                     for part in held_out_documents(text, VAL_FRACTION))
    if by_document:
        return tuple(encode_stream(part, tokenizer) for part in held_out_documents(text, VAL_FRACTION))
    return train_val_split(encode_stream(text, tokenizer), VAL_FRACTION)
