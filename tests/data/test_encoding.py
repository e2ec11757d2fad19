"""Text to token ids for a task: a word's tag on its last token, <bos> ... <eos> framing for pretraining."""

from tinytransformer.data import BPETokenizer, WordTokenizer
from tinytransformer.data.encoding import (
    IGNORE_INDEX, encode_tagged, encode_texts, encode_words, pretraining_sentences, task_tokenizer,
)


def test_encoding_puts_a_word_tag_on_its_last_token():
    word_tok = WordTokenizer.train([["New", "York", "is", "big"]])
    ids, labels = encode_tagged(word_tok, [["New", "York", "rocks"]], [["B-loc", "I-loc", "O"]],
                                {"O": 0, "B-loc": 1, "I-loc": 2}, max_len=10)
    assert ids[0][0] == word_tok.bos_id and ids[0][3] == word_tok.unk_id
    assert labels[0] == [IGNORE_INDEX, 1, 2, 0]
    bpe = BPETokenizer.train("New York is big. New York is big.", vocab_size=270)
    ids, ends = encode_words(bpe, ["New", "Yorkshire"])
    assert ids == bpe.encode("New Yorkshire") and ends[-1] == len(ids) - 1 and ends[0] < ends[1] - 1
    assert encode_texts(word_tok, ["New York is big"], max_len=3) == [[word_tok.bos_id] + word_tok.encode("New York")]


def test_pretraining_sentences_are_framed_and_cut_to_the_block():
    tok = WordTokenizer.train(["a b c d e f"])
    sentences = pretraining_sentences(["a b c d e f", "a"], tok, block_size=4)
    assert sentences[0] == [tok.bos_id] + tok.encode("a b c d")  # block_size + 1 ids: inputs and next tokens
    assert sentences[1] == [tok.bos_id, tok.encode("a")[0], tok.eos_id]


def test_task_tokenizer_kinds():
    words = task_tokenizer(["a a b", "a c"], "word", min_freq=2)
    assert words.encode("a b") == [words.encode("a")[0], words.unk_id]
    assert task_tokenizer(["new york"], "bpe", vocab_size=260).vocab_size == 260
