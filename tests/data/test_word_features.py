"""Word-shape features, character ids, sub-word pieces per word, and the tagger's padded batches."""

import numpy as np
import pytest

from tinytransformer.data import BPETokenizer, WordTokenizer
from tinytransformer.data.encoding import IGNORE_INDEX
from tinytransformer.data.word_features import (
    SHAPE_FEATURES, CharVocab, TaggerBatch, tagging_batch, word_pieces, word_shape_features, word_shapes,
)

SENTENCES = [["@john", "flew", "to", "New", "York", "http://t.co/x1"], ["#NBA", "2017", "!"], ["Café"]]


def _on(word):
    return {name for name, v in zip(SHAPE_FEATURES, word_shape_features(word)) if v}


@pytest.mark.parametrize("word, facts", [
    ("Obama", {"capitalised", "length_5_9"}),
    ("NASA", {"capitalised", "all_caps", "length_2_4"}),
    ("york", {"all_lower", "length_2_4"}),
    ("2017", {"has_digit", "all_digits", "length_2_4"}),
    ("2nd", {"has_digit", "all_lower", "length_2_4"}),
    ("@Obama", {"at_mention", "capitalised", "has_punctuation", "length_5_9"}),
    ("#nba", {"hashtag", "all_lower", "has_punctuation", "length_2_4"}),
    ("http://t.co/x1", {"url", "all_lower", "has_digit", "has_punctuation", "length_10_plus"}),
    ("www.example.org", {"url", "all_lower", "has_punctuation", "length_10_plus"}),
    ("google.com", {"url", "all_lower", "has_punctuation", "length_10_plus"}),
    ("U.S.", {"capitalised", "all_caps", "has_punctuation", "length_2_4"}),
    ("...", {"has_punctuation", "all_punctuation", "length_2_4"}),
    ("!", {"has_punctuation", "all_punctuation", "length_1"}),
    ("Café", {"capitalised", "non_ascii", "length_2_4"}),
])
def test_shape_features(word, facts):
    assert _on(word) == facts


def test_shapes_are_a_fixed_float_vector_with_one_length_bucket():
    rows = word_shapes(["a", "ab", "abcde", "abcdefghij", "@x"])
    assert rows.shape == (5, len(SHAPE_FEATURES)) and rows.dtype == np.float32
    buckets = [SHAPE_FEATURES.index(n) for n in SHAPE_FEATURES if n.startswith("length_")]
    assert (rows[:, buckets].sum(axis=1) == 1).all()
    with pytest.raises(ValueError, match="non-empty"):
        word_shape_features("")


def test_char_vocab_reserves_padding_and_unknown_and_keeps_case():
    vocab = CharVocab.train(SENTENCES)
    assert vocab.vocab_size == len(set("".join(w for s in SENTENCES for w in s))) + 2
    assert vocab.encode("Nn") != vocab.encode("nn")  # case is kept
    assert vocab.encode("😀") == [CharVocab.unk_id]
    ids = vocab.encode_words(["York", "http://t.co/x1"], max_len=6)
    assert ids.shape == (2, 6) and (ids[0, 4:] == CharVocab.pad_id).all() and (ids[1] > 1).all()  # cut to 6
    assert CharVocab.from_dict(vocab.to_dict()).encode("York") == vocab.encode("York")
    assert CharVocab.train(["aab"], min_freq=2).chars == ["a"]
    with pytest.raises(TypeError, match="not one str"):
        CharVocab.train("abc")


def test_word_pieces_give_one_id_per_word_or_the_bpe_pieces():
    words = SENTENCES[0]
    tokenizer = WordTokenizer.train(SENTENCES)
    assert word_pieces(tokenizer, words) == [[i] for i in tokenizer.encode_words(words)]
    bpe = BPETokenizer.train(" ".join(w for s in SENTENCES for w in s) * 3, 280)
    pieces = word_pieces(bpe, words)
    assert len(pieces) == len(words) and all(pieces)
    assert [bpe.decode(p).strip() for p in pieces] == words


def test_tagging_batch_pads_every_view():
    tokenizer, chars = WordTokenizer.train(SENTENCES), CharVocab.train(SENTENCES)
    tags = [["B-person", "O", "O", "B-location", "I-location", "O"], ["B-group", "O", "O"], ["O"]]
    tag_ids = {"O": 0, "B-person": 1, "B-location": 2, "I-location": 3, "B-group": 4}
    batch = tagging_batch(SENTENCES, tags, tokenizer=tokenizer, char_vocab=chars, max_word_len=8, tag_ids=tag_ids)
    assert isinstance(batch, TaggerBatch) and batch.lengths.tolist() == [6, 3, 1]
    assert batch.mask.tolist()[2] == [True] + [False] * 5
    assert batch.pieces.shape == (3, 6, 1) and batch.piece_mask[..., 0].tolist() == batch.mask.tolist()
    assert batch.chars.shape == (3, 6, 8) and (batch.chars[~batch.mask] == 0).all()
    assert batch.shapes.shape == (3, 6, len(SHAPE_FEATURES)) and (batch.shapes[~batch.mask] == 0).all()
    assert batch.tags[0].tolist() == [1, 0, 0, 2, 3, 0] and batch.tags[2, 1:].tolist() == [IGNORE_INDEX] * 5
    assert tagging_batch([["ab", "c"]], char_vocab=chars).chars.shape == (1, 2, 2)  # padded to the longest word
    bare = tagging_batch(SENTENCES, shapes=False)
    assert bare.pieces is bare.chars is bare.shapes is bare.tags is bare.extra is None


def test_tagging_batch_errors():
    with pytest.raises(ValueError, match="one tag per word"):
        tagging_batch([["a", "b"]], tags=[[0]])
    with pytest.raises(ValueError, match="at least one word"):
        tagging_batch([["a"], []])
