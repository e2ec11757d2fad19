"""WordTokenizer: vocabulary by frequency, <unk> for unknown words, round trips, save/load through the shared interface."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytransformer.data import Tokenizer, WordTokenizer, tokenizer_from_dict
from tinytransformer.data.word_tokenizer import SPECIALS

TEXTS = ["the film is good", "the film is bad", "The plot is thin", "good good fun"]


def test_vocabulary_by_frequency_ties_alphabetical():
    tok = WordTokenizer.train(TEXTS)
    assert tok.words[:5] == list(SPECIALS) == ["<pad>", "<unk>", "<cls>", "<bos>", "<eos>"]
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3, 4)
    # is: 3, good: 3, film: 2, the: 2, then the words seen once in alphabetical order
    assert tok.words[5:] == ["good", "is", "film", "the", "The", "bad", "fun", "plot", "thin"]
    assert tok.vocab_size == 14


def test_vocab_size_min_freq_and_lower():
    assert WordTokenizer.train(TEXTS, vocab_size=8).words[5:] == ["good", "is", "film"]
    assert WordTokenizer.train(TEXTS, min_freq=2).words[5:] == ["good", "is", "film", "the"]
    lower = WordTokenizer.train(TEXTS, min_freq=2, lower=True)
    assert lower.words[5:] == ["good", "is", "the", "film"]  # "The" and "the" now count together: 3 times
    assert lower.encode("THE Film") == [7, 8]


def test_unknown_words_become_unk():
    tok = WordTokenizer.train(TEXTS, min_freq=2)
    ids = tok.encode("the  film\tis\nawful !")
    assert ids == [tok.stoi["the"], tok.stoi["film"], tok.stoi["is"], tok.unk_id, tok.unk_id]
    assert tok.decode(ids) == "the film is <unk> <unk>"
    assert tok.encode("") == []


@given(st.lists(st.sampled_from(["good", "bad", "film", "the", "The", "unseen", "<cls>", "x y"]), max_size=12))
def test_round_trip_words_and_tags_stay_aligned(words):
    tok = WordTokenizer.train(TEXTS)
    ids = tok.encode_words(words)
    assert len(ids) == len(words)  # one id per word, even for a "word" holding a space: tags stay aligned
    assert tok.decode(ids) == " ".join(w if w in tok.stoi else "<unk>" for w in words)
    text = " ".join(words)
    assert tok.decode(tok.encode(text)) == " ".join(w if w in tok.stoi else "<unk>" for w in text.split())


def test_training_on_word_lists_and_a_custom_pattern():
    tok = WordTokenizer.train([["New York", "is", "big"], "is it"])
    assert tok.words[5:] == ["is", "New York", "big", "it"]
    punct = WordTokenizer.train(["Good, isn't it?"], pattern=r"\w+|[^\w\s]")
    assert punct.split("isn't!") == ["isn", "'", "t", "!"]


def test_save_load_and_from_dict(tmp_path):
    tok = WordTokenizer.train(TEXTS, vocab_size=10, lower=True, pattern=r"\w+")
    path = tmp_path / "tok.json"
    tok.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # the atomic write left no temporary file
    assert json.loads(path.read_text())["type"] == "word"
    for loaded in (WordTokenizer.load(path), Tokenizer.load(path), tokenizer_from_dict(tok.to_dict())):
        assert isinstance(loaded, WordTokenizer)
        assert loaded.to_dict() == tok.to_dict()
        assert loaded.encode("The film, GOOD!") == tok.encode("The film, GOOD!")


def test_decode_accepts_arrays_and_rejects_bad_ids():
    tok = WordTokenizer.train(TEXTS)
    assert tok.decode(np.array([5, 6], dtype=np.int64)) == "good is"
    with pytest.raises(ValueError, match=r"WordTokenizer.decode: id 14 at position 1 is outside the vocabulary \[0, 14\)"):
        tok.decode([5, 14])


def test_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size must be None or an int >= 5"):
        WordTokenizer.train(TEXTS, vocab_size=3)
    with pytest.raises(ValueError, match="min_freq must be an int >= 1, got 0"):
        WordTokenizer.train(TEXTS, min_freq=0)
    with pytest.raises(TypeError, match="not one string"):
        WordTokenizer.train("the film")
    with pytest.raises(ValueError, match="must start with the special tokens"):
        WordTokenizer(["a", "b"])
    with pytest.raises(ValueError, match="holds 'a' more than once"):
        WordTokenizer([*SPECIALS, "a", "a"])
    tok = WordTokenizer.train(TEXTS)
    with pytest.raises(TypeError, match="use encode for text"):
        tok.encode_words("the film")
    with pytest.raises(TypeError, match="use encode_words"):
        tok.encode(["the", "film"])
