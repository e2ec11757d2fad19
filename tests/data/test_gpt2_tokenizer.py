"""GPT-2's tokenizer from its files, token for token against Hugging Face's GPT2TokenizerFast (a byte-level BPE
trained here with the ``tokenizers`` package: nothing is downloaded)."""

import json
import re
import unicodedata

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytransformer.data import BPETokenizer, GPT2Tokenizer, Tokenizer, load_corpus, tokenizer_from_dict
from tinytransformer.data.gpt2_tokenizer import bytes_to_unicode, gpt2_split_pattern

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")
transformers.utils.logging.set_verbosity_error()

MULTILINGUAL = ("Le café où l'on a mangé une crème brûlée. Straße, naïve, Ελληνικά, русский текст. "
                "日本語の文章と中文的句子。한국어 문장입니다. 😀 👍🏽 👨‍👩‍👧 ❤️ ✨ 12 345 6789 ٣٤٥ ² ½ Ⅻ\n")
SAMPLES = [
    "Hello, world! It's a test; they'll say we're done, I'd think you've seen it. DON'T SHOUT 'quoted'",
    "café naïve résumé Ångström, and e\u0301 with a combining accent",
    "日本語のテキスト、中文文本。한국어 텍스트",
    "emoji 😀👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ and 🤖🤖🤖",
    "a  b   c\n\n\n  d\t\te \u00a0 \u3000x   \n \n\t",
    "x² ½ Ⅻ ① ٣٤ 12345 3.14 1,000,000 007",
    "<|endoftext|>a new document<|endoftext|> ",
    "foo_bar __init__(self) -> None: \x1c\x1d y\x00z \x7f",
    "    def f(x):\n        return x ** 2  # four spaces\n",
    "  leading", "trailing   ", " ", "\n", "",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """vocab.json + merges.txt of a byte-level BPE trained by ``tokenizers``, with GPT-2's <|endoftext|>."""
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=1000, special_tokens=["<|endoftext|>"], show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([load_corpus("pydoc")[:100_000], MULTILINGUAL * 20], trainer=trainer)
    out = tmp_path_factory.mktemp("gpt2_tokenizer")
    tok.model.save(str(out))
    return out


@pytest.fixture(scope="module")
def ours(folder):
    return GPT2Tokenizer.from_files(folder / "vocab.json", folder / "merges.txt")


@pytest.fixture(scope="module")
def theirs(folder):
    return transformers.GPT2TokenizerFast.from_pretrained(folder)


def test_the_byte_table_is_gpt2s():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256 and all(c.isprintable() and not c.isspace() for c in table.values())
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    assert set(table.values()) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())


@pytest.mark.parametrize("text", SAMPLES)
def test_encoding_equals_the_reference_token_for_token_and_decoding_round_trips(text, ours, theirs):
    ids = ours.encode(text)
    assert ids == theirs.encode(text)
    assert ours.decode(ids) == text == theirs.decode(ids, clean_up_tokenization_spaces=False)


def test_a_whole_corpus_encodes_as_the_reference_does(ours, theirs):
    text = load_corpus("pydoc")[200_000:230_000] + MULTILINGUAL
    assert ours.encode(text) == theirs.encode(text)


@given(st.text(st.characters(exclude_categories=("Cs", "Cn")), max_size=40))
def test_any_text_encodes_as_the_reference_does(ours, theirs, text):
    assert ours.encode(text) == theirs.encode(text)
    assert ours.decode(ours.encode(text)) == text


@given(st.lists(st.integers(0, 999), max_size=12))
def test_any_ids_decode_as_the_reference_does_cut_characters_included(ours, theirs, ids):
    assert ours.decode(ids) == theirs.decode(ids, clean_up_tokenization_spaces=False)


def test_the_split_pattern_equals_the_references_on_every_number_and_a_sample_of_all_characters():
    """Python's \\w and \\d differ from \\p{L} and \\p{N} exactly on the numbers that are not digits (Nl, No)
    and U+001C..U+001F: all of those, and every 61st of the code points Python's tables know."""
    byte_level = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    split, table = re.compile(gpt2_split_pattern()), bytes_to_unicode()
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn"
             and (c % 61 == 0 or c < 0x100 or unicodedata.category(chr(c)) in ("Nl", "No"))]
    assert len(chars) > 3000
    for c in chars:
        text = f"a{c}{c}1{c} {c}b\t{c}\n{c} x"
        ours = ["".join(table[b] for b in chunk.encode("utf-8")) for chunk in split.findall(text)]
        assert ours == [piece for piece, _ in byte_level.pre_tokenize_str(text)], f"U+{ord(c):04X}"


# ------------------------------------------------------------------ our BPE in GPT-2's form
@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(load_corpus("pydoc")[:50_000], 400)


def test_a_trained_bpe_tokenizer_becomes_the_same_gpt2_tokenizer(bpe, tmp_path):
    gpt2 = GPT2Tokenizer.from_bpe(bpe)
    assert gpt2.vocab_size == bpe.vocab_size and gpt2.special_tokens == []
    for text in [s for s in SAMPLES if "²" not in s and "\x1c" not in s]:  # see GPT2Tokenizer.from_bpe
        assert gpt2.encode(text) == bpe.encode(text)
    gpt2.save_files(tmp_path)
    theirs = transformers.GPT2TokenizerFast.from_pretrained(tmp_path)
    text = load_corpus("pydoc")[60_000:70_000]
    assert theirs.encode(text) == bpe.encode(text) == GPT2Tokenizer.from_folder(tmp_path).encode(text)


def test_a_bpe_tokenizers_specials_become_vocabulary_that_no_text_encodes_to():
    bpe = BPETokenizer([(97, 98)], specials=["<pad>", "<mask>"])
    gpt2 = GPT2Tokenizer.from_bpe(bpe)
    assert gpt2.encoder["<mask>"] == bpe.special_ids["<mask>"] == 258
    assert gpt2.encode("ab <mask>") == bpe.encode("ab <mask>") and gpt2.decode([258]) == "<mask>"


def test_a_bpe_tokenizer_with_two_ids_for_the_same_bytes_has_no_gpt2_form():
    bpe = BPETokenizer([(97, 98), (256, 99), (98, 99), (97, 258)])  # "ab"+"c" and "a"+"bc": "abc" twice
    with pytest.raises(ValueError, match=r"ids 257 and 259 both stand for b'abc'"):
        GPT2Tokenizer.from_bpe(bpe)


def test_it_travels_as_a_dict_and_as_a_json_file(ours, tmp_path):
    again = tokenizer_from_dict(json.loads(json.dumps(ours.to_dict())))
    assert isinstance(again, GPT2Tokenizer) and again.encode(MULTILINGUAL) == ours.encode(MULTILINGUAL)
    ours.save(tmp_path / "tok.json")
    assert Tokenizer.load(tmp_path / "tok.json").encode(SAMPLES[6]) == ours.encode(SAMPLES[6])


def test_save_files_writes_what_from_files_reads(ours, folder, tmp_path):
    ours.save_files(tmp_path)
    merges = [(f / "merges.txt").read_text().splitlines()[1:] for f in (tmp_path, folder)]  # after "#version"
    assert merges[0] == merges[1]
    again = GPT2Tokenizer.from_folder(tmp_path)
    assert again.encoder == ours.encoder and again.merges == ours.merges


# ------------------------------------------------------------------ bad files: each error names its file
def _files(tmp_path, vocab=None, merges="#version: 0.2\nĠ t\n"):
    vocab = vocab if vocab is not None else {**{c: i for i, c in enumerate(bytes_to_unicode().values())}, "Ġt": 256}
    (tmp_path / "vocab.json").write_text(vocab if isinstance(vocab, str) else json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text(merges, encoding="utf-8")
    return tmp_path


def test_good_small_files_load(tmp_path):
    tok = GPT2Tokenizer.from_folder(_files(tmp_path))
    assert tok.encode(" t t") == [256, 256] and tok.vocab_size == 257


@pytest.mark.parametrize("vocab, merges, message", [
    ("{not json", None, r"vocab.json: not valid JSON"),
    ("[1, 2]", None, r"vocab.json: must hold a JSON object of token -> id, got a list"),
    ({"a": 0}, None, r"vocab.json and merges.txt do not make a tokenizer: vocab lacks 255 of the 256 byte tokens"),
    ({**{c: i for i, c in enumerate(bytes_to_unicode().values())}, "Ġt": 300}, None, r"ids in vocab must be 0..256"),
    (None, "#version: 0.2\nĠ t\nĠt h e\n", r"merges.txt: line 3 must be two tokens separated by one space"),
    (None, "Ġ t\n\nĠ t\n", r"merges.txt: line 2 must be two tokens"),
    (None, "Ġt h\n", r"merge 0 \('Ġt', 'h'\) needs the token 'Ġth', which is not in vocab"),
])
def test_bad_files_are_named(vocab, merges, message, tmp_path):
    folder = _files(tmp_path, vocab, merges if merges is not None else "#version: 0.2\nĠ t\n")
    with pytest.raises(ValueError, match=message):
        GPT2Tokenizer.from_folder(folder)


def test_missing_and_non_utf8_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"vocab.json: no such file \(a GPT-2 tokenizer is vocab.json and "):
        GPT2Tokenizer.from_folder(tmp_path)
    _files(tmp_path)
    (tmp_path / "merges.txt").write_bytes(b"\xff\xfe t\n")
    with pytest.raises(ValueError, match=r"merges.txt: not UTF-8 text"):
        GPT2Tokenizer.from_folder(tmp_path)


def test_a_lone_surrogate_is_refused_by_name(ours):
    with pytest.raises(ValueError, match=r"character U\+D800 at index 2 is a lone surrogate"):
        ours.encode("ab\ud800")


def test_ids_outside_the_vocabulary_are_refused(ours):
    with pytest.raises(ValueError, match=r"id 1000 at position 1 is outside the vocabulary \[0, 1000\)"):
        ours.decode(np.array([5, 1000]))
