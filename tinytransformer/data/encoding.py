"""Text to token ids for a task: a tokenizer trained on the task, sentences, tagged words, pretraining lines.

    tok   = task_tokenizer(texts, "word", min_freq=2)        words (or byte-level "bpe") of the task's own text
    ids   = encode_texts(tok, texts, max_len=64)             one list of ids per text, cut to the block size
    ids, labels = encode_tagged(tok, sentences, tags, tag_ids, max_len=64)   a tag id per word, at its last token
    lines = pretraining_sentences(texts, tok, block_size=64) <bos> ... <eos> per sentence, for next-token prediction

A word tokenizer starts every sequence with <bos>, as in pretraining; BPE has no
such token. For a bidirectional encoder (``encoder=True``) a sentence reads as
BERT's do, ``<cls> ... <eos>`` ([CLS] ... [SEP]): the tokenizer of a pretrained
encoder has both. Tagging words with a sub-word tokenizer: a word may become several
tokens. Its tag is scored at its *last* token, the first position of a causal
model that has seen the whole word; the other tokens carry ``IGNORE_INDEX``.
Batching these lists of different lengths is ``batching.py``'s job
(``length_batches``, ``pad``).
"""

from .bpe import BPETokenizer
from .corpora import load_corpus
from .word_tokenizer import WordTokenizer

TOKENIZER_KINDS = ("word", "bpe")
IGNORE_INDEX = -100  # the label of positions that carry no tag (padding, inner sub-words), as in PyTorch


def task_tokenizer(texts, kind="word", vocab_size=None, min_freq=1):
    """A tokenizer trained on ``texts`` (strings, or word lists): ``"word"`` or byte-level ``"bpe"``.

    Word level keeps the words seen at least ``min_freq`` times (``vocab_size``
    caps their number); the rest become <unk>. A word seen once gives a
    classifier a single example to learn it from, mostly a chance to memorise
    that sentence: ``min_freq=2`` halves SST-2's vocabulary and helps. BPE
    learns ``vocab_size`` ids (default 2048) from the texts' words.
    """
    if kind == "word":
        return WordTokenizer.train(list(texts), vocab_size=vocab_size, min_freq=min_freq)
    if kind == "bpe":
        text = "\n".join(t if isinstance(t, str) else " ".join(t) for t in texts)
        return BPETokenizer.train(text, vocab_size or 2048)
    raise ValueError(f"task_tokenizer: kind must be one of {TOKENIZER_KINDS}, got {kind!r}")


def _prefix(tokenizer) -> list:
    """``[<bos>]`` for a word tokenizer, as in pretraining; char and BPE tokenizers have no such token."""
    return [tokenizer.bos_id] if isinstance(tokenizer, WordTokenizer) else []


def frame(tokenizer, encoder=False) -> tuple:
    """``(prefix, suffix)``, the ids around each sentence: ``([<bos>], [])`` for a causal model with a word
    tokenizer (``_prefix``), ``([<cls>], [<eos>])`` for a bidirectional ``encoder``, BERT's [CLS] ... [SEP]."""
    if not encoder:
        return _prefix(tokenizer), []
    specials = getattr(tokenizer, "special_ids", {})
    if "<cls>" not in specials or "<eos>" not in specials:
        raise ValueError(f"an encoder reads <cls> ... <eos>, but this {tokenizer.kind} tokenizer has no such "
                         "tokens: use the tokenizer the encoder was pretrained with")
    return [specials["<cls>"]], [specials["<eos>"]]


def encode_texts(tokenizer, texts, max_len, encoder=False) -> list:
    """Token ids of each text in its ``frame``, cut to ``max_len`` (the body's block size; the suffix kept)."""
    prefix, suffix = frame(tokenizer, encoder)
    cut = None if max_len is None else max_len - len(suffix)
    return [(prefix + tokenizer.encode(text))[:cut] + suffix for text in texts]


def encode_words(tokenizer, words, encoder=False) -> tuple:
    """``(ids, ends)`` of a pre-tokenised sentence in its ``frame``: its token ids, and where each word's last
    token sits."""
    ids, suffix = frame(tokenizer, encoder)
    ends = []
    for i, word in enumerate(words):
        if isinstance(tokenizer, WordTokenizer):
            ids += tokenizer.encode_words([word])
        else:
            ids += tokenizer.encode(word if i == 0 else " " + word)  # BPE sees the space before a word
        ends.append(len(ids) - 1)
    return ids + suffix, ends


def encode_tagged(tokenizer, sentences, tags, tag_ids, max_len, encoder=False) -> tuple:
    """``(ids, labels)`` per sentence: each word's tag id at its last token, ``IGNORE_INDEX`` elsewhere.

    Words past ``max_len`` tokens are left out (a tagger tags them "O").
    """
    all_ids, all_labels = [], []
    for words, word_tags in zip(sentences, tags):
        ids, ends = encode_words(tokenizer, words, encoder)
        labels = [IGNORE_INDEX] * len(ids)
        for end, tag in zip(ends, word_tags):
            labels[end] = tag_ids[tag]
        all_ids.append(ids[:max_len])
        all_labels.append(labels[:max_len])
    return all_ids, all_labels


def pretraining_sentences(texts, tokenizer, block_size, corpus=None) -> list:
    """The sentences a body is pretrained on: the task's ``texts`` (strings or word lists), then,
    if ``corpus`` names one (``load_corpus``), its lines of at least 5 words. Word tokenizers
    frame each with <bos> ... <eos>, as fine-tuning sees them; each is cut to ``block_size + 1``
    ids (inputs and next tokens) and kept if it has at least two."""
    texts = [t if isinstance(t, str) else " ".join(t) for t in texts]
    if corpus is not None:
        texts += [line for line in load_corpus(corpus).splitlines() if len(line.split()) >= 5]
    end = [tokenizer.eos_id] if isinstance(tokenizer, WordTokenizer) else []
    seqs = [(_prefix(tokenizer) + tokenizer.encode(t) + end)[:block_size + 1] for t in texts]
    return [s for s in seqs if len(s) >= 2]
