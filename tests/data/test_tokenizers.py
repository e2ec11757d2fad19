"""Tokenizers: exact round trips on any Unicode text, BPE merges checked by hand, save/load identity."""

import json

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tinytransformer.data import BPETokenizer, CharTokenizer, Tokenizer, pydoc_corpus, tokenizer_from_dict
from tinytransformer.data.bpe import merge_pair

TRICKY = ["", "héllo wörld", "e\u0301 n\u0303", "🙂👍🏽 family: 👨‍👩‍👧", "日本語のテキスト", "tab\tnew\nline  \r\n",
          "don't  we'll_x__y 3.14 ١٢٣", "\x00\x7f\u200b"]


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(pydoc_corpus()[:30_000] + " ".join(TRICKY), vocab_size=400)


@given(st.text())
@example("")
@example("🙂👍🏽 e\u0301")
def test_char_round_trip(text):
    tok = CharTokenizer.from_text("abc" + text)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    assert tok.decode(np.array(ids, dtype=np.int32)) == text


@pytest.mark.parametrize("text", TRICKY)
def test_bpe_round_trip_tricky(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


@given(text=st.text())
def test_bpe_round_trip_any_text(bpe, text):
    ids = bpe.encode(text)
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == text


def test_bpe_hand_checked_merges():
    # "aaabdaaabac": aa occurs 4 times (overlapping counts) -> 256; then ab and (aa)a tie at 2 and
    # the smaller pair (a, b) wins -> 257; then (aa)(ab) occurs twice -> 258: "XdXac".
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=259)
    a, b, c, d = (ord(ch) for ch in "abcd")
    assert tok.merges == [(a, a), (a, b), (256, 257)]
    assert tok.vocab[258] == b"aaab"
    assert tok.encode("aaabdaaabac") == [258, d, 258, a, c]
    assert tok.decode([258, d]) == "aaabd"


def test_bpe_merges_stay_inside_chunks():
    # chunks "ab" and " ab" (x3): a+b first (4 times), then ' '+ab; "b " is never a pair
    tok = BPETokenizer.train("ab ab ab ab", vocab_size=300)
    assert tok.merges == [(ord("a"), ord("b")), (ord(" "), 256)]
    assert tok.vocab[257] == b" ab" and tok.vocab_size == 258  # the text ran out of pairs before 300
    assert tok.encode("ab ab") == [256, 257]


def test_bpe_smaller_vocab_is_a_prefix_and_shortens_nothing():
    text = pydoc_corpus()[:20_000]
    big, small = BPETokenizer.train(text, 400), BPETokenizer.train(text, 300)
    assert small.merges == big.merges[:44]
    assert len(big.encode(text)) < len(small.encode(text)) < len(BPETokenizer().encode(text))


def test_bpe_without_merges_is_utf8():
    text = "héllo 🙂"
    assert BPETokenizer().encode(text) == list(text.encode("utf-8"))


def test_bpe_decode_replaces_invalid_utf8(bpe):
    assert bpe.decode([0xF0, 0x9F]) == "\ufffd"     # half of an emoji's four bytes
    assert bpe.decode([]) == ""


def test_bpe_matches_merge_pair():
    assert merge_pair([1, 1, 1, 2, 1, 1], (1, 1), 9) == [9, 1, 2, 9]


@pytest.mark.parametrize("make", [lambda: CharTokenizer.train("hello, world"), lambda: BPETokenizer.train("hello hello", 260)])
def test_save_load_identity(tmp_path, make):
    tok = make()
    path = tmp_path / "tok.json"
    tok.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # no temp file left behind
    for loaded in (type(tok).load(path), Tokenizer.load(path), tokenizer_from_dict(json.loads(path.read_text()))):
        assert type(loaded) is type(tok)
        assert loaded.to_dict() == tok.to_dict()
        assert loaded.vocab_size == tok.vocab_size
        assert loaded.encode("hello") == tok.encode("hello")


def test_load_wrong_kind(tmp_path):
    path = tmp_path / "tok.json"
    CharTokenizer.train("abc").save(path)
    with pytest.raises(ValueError, match="holds a CharTokenizer"):
        BPETokenizer.load(path)
    with pytest.raises(ValueError, match="unknown tokenizer type 'wordpiece'"):
        tokenizer_from_dict({"type": "wordpiece"})


def test_char_unknown_character_names_it():
    tok = CharTokenizer.train("hello")
    with pytest.raises(ValueError, match=r"'é' \(U\+00E9\) at index 1 is not in the vocabulary of 4"):
        tok.encode("hé")


def test_char_vocabulary_is_sorted_set():
    tok = CharTokenizer.from_text("hello")
    assert tok.chars == ["e", "h", "l", "o"] and tok.vocab_size == 4
    assert tok.encode("hole") == [1, 3, 2, 0]


@pytest.mark.parametrize("tok", [CharTokenizer.train("abc"), BPETokenizer()], ids=["char", "bpe"])
def test_decode_rejects_bad_ids(tok):
    with pytest.raises(ValueError, match=r"id -1 at position 1 is outside the vocabulary"):
        tok.decode([0, -1])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="1-D sequence of integers"):
        tok.decode([0.5])


def test_bpe_errors():
    with pytest.raises(ValueError, match=r"BPETokenizer.train: vocab_size must be in \[256, inf\), got 100"):
        BPETokenizer.train("abc", 100)
    with pytest.raises(ValueError, match="lone surrogate"):
        BPETokenizer().encode("a\ud800")
    with pytest.raises(ValueError, match="merge 0 joins"):
        BPETokenizer([(0, 300)])
