"""Task data: user files (and their errors, with file:line), the train/dev split, SST-2 and WNUT-17 counts.

The real-data tests read the data directory ($TINYTRANSFORMER_DATA) through the
loaders and skip when the files are not there: tests never download.
"""

import re
from collections import Counter

import pytest

from tinytransformer.data import DATASETS, ChecksumError, data_dir
from tinytransformer.data.tasks import (
    SST2_LABELS, WNUT17_TAGS, load_classification, load_sst2, load_tagging, load_task, load_wnut17, split_train_dev,
)


def in_data_dir(name: str) -> bool:
    return all((data_dir() / relpath).is_file() for relpath in DATASETS[name])


def needs(name):
    return pytest.mark.skipif(not in_data_dir(name), reason=f"{name} is not in the data directory {data_dir()} "
                                                             "(set TINYTRANSFORMER_DATA; tests never download)")


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


# ---- classification files -------------------------------------------------------------------------------------

def test_load_classification_tsv(tmp_path):
    path = write(tmp_path / "reviews.tsv", "label\ttext\npos\tA fine, warm film .\r\n\n  neg \t dull  \n\npos\tgreat\t\n")
    texts, labels = load_classification(path)
    assert texts == ["A fine, warm film .", "dull", "great"]
    assert labels == ["pos", "neg", "pos"]


def test_load_classification_csv_with_quoted_commas(tmp_path):
    path = write(tmp_path / "reviews.csv", 'label,text\n1,"good, really good"\n0,bad\n')
    assert load_classification(path) == (["good, really good", "bad"], ["1", "0"])


@pytest.mark.parametrize("name, text, message", [
    ("reviews.tsv", "pos\tok\npos\tfine\nneg only a label\n",
     "reviews.tsv:3: expected 'label<TAB>text', got 1 field (the fields must be separated by a tab)"),
    ("reviews.tsv", "pos\tok\nneg\tbad\textra\n", "reviews.tsv:2: expected 'label<TAB>text', got 3 fields"),
    ("reviews.tsv", "pos\tok\nneg\t  \n", "reviews.tsv:2: expected 'label<TAB>text', got 1 field"),
    ("reviews.csv", 'label,text\n1,ok\n0,""\n', "reviews.csv:3: empty text"),
    ("reviews.tsv", "\tok\n", "reviews.tsv:1: empty label"),
    ("reviews.csv", "1,ok\n0,bad, unquoted\n", "reviews.csv:2: expected 'label,text', got 3 fields"),
])
def test_load_classification_malformed_line_names_file_and_line(tmp_path, monkeypatch, name, text, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / name, text)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        load_classification(name)


def test_load_classification_other_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="load_classification: no file at"):
        load_classification(tmp_path / "missing.tsv")
    with pytest.raises(ValueError, match="latin.tsv: not UTF-8 text: byte 0xe9"):
        load_classification(write(tmp_path / "latin.tsv", "pos\tcaf\u00e9\n", encoding="latin-1"))
    with pytest.raises(ValueError, match="holds no examples"):
        load_classification(write(tmp_path / "empty.tsv", "\n\n"))


# ---- tagging files ----------------------------------------------------------------------------------------------

def test_load_tagging_sentence_breaks_and_stray_whitespace(tmp_path):
    # a break may be an empty line, a lone tab (as in WNUT-17's training file) or several lines; no final newline
    text = "Paris\tB-location\nis\tO \n\t\nBig\tB-group\r\nBand\tI-group\n\n\n  \n!\tO"
    sentences, tags = load_tagging(write(tmp_path / "ner.conll", text))
    assert sentences == [["Paris", "is"], ["Big", "Band"], ["!"]]
    assert tags == [["B-location", "O"], ["B-group", "I-group"], ["O"]]


@pytest.mark.parametrize("text, message", [
    ("a\tO\n\nb\tO\nc O\n", "ner.conll:4: expected 'token<TAB>tag', got 1 field (the fields must be separated by a tab)"),
    ("a\tO\tNN\n", "ner.conll:1: expected 'token<TAB>tag', got 3 fields"),
    ("a\t\tO\n", "ner.conll:1: expected 'token<TAB>tag', got 3 fields"),
])
def test_load_tagging_malformed_line_names_file_and_line(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "ner.conll", text)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        load_tagging("ner.conll")


def test_load_tagging_empty_file(tmp_path):
    with pytest.raises(ValueError, match="holds no sentences"):
        load_tagging(write(tmp_path / "ner.conll", "\n \n\t\n"))


# ---- train/dev split --------------------------------------------------------------------------------------------

def test_split_train_dev_is_stratified_and_seeded():
    texts = [f"text {i}" for i in range(100)]
    labels = ["a"] * 80 + ["b"] * 20
    (x_train, y_train), (x_dev, y_dev) = split_train_dev(texts, labels, dev_fraction=0.1, seed=0)
    assert len(x_dev) == 10 and len(x_train) == 90
    assert Counter(y_dev) == {"a": 8, "b": 2}  # each class keeps its share
    assert sorted(x_train + x_dev) == sorted(texts)
    assert all(labels[int(t.split()[1])] == y for t, y in zip(x_train + x_dev, y_train + y_dev))
    assert split_train_dev(texts, labels, seed=0) == ((x_train, y_train), (x_dev, y_dev))
    assert split_train_dev(texts, labels, seed=1)[1][0] != x_dev


def test_split_train_dev_tagging_is_not_stratified():
    sentences = [["w", str(i)] for i in range(20)]
    tags = [["O", "O"]] * 19 + [["B-x", "O"]]  # one B-x sentence could not be stratified
    (x_train, y_train), (x_dev, y_dev) = split_train_dev(sentences, tags, dev_fraction=0.25)
    assert len(x_dev) == 5 and len(y_train) == 15


def test_split_train_dev_errors():
    with pytest.raises(ValueError, match="3 texts but 2 labels"):
        split_train_dev(["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match=r"dev_fraction must lie in \(0, 1\), got 1.5"):
        split_train_dev(["a", "b"], ["x", "y"], dev_fraction=1.5)
    with pytest.raises(ValueError, match="split_train_dev: cannot split 4 examples with dev_fraction=0.25 stratified"):
        split_train_dev(["a", "b", "c", "d"], ["x", "x", "x", "y"], dev_fraction=0.25)


# ---- load_task on user files ------------------------------------------------------------------------------------

def test_load_task_user_classification_holds_out_dev(tmp_path):
    rows = "".join(f"{'pos' if i % 2 else 'neg'}\tsentence {i}\n" for i in range(40))
    task = load_task(write(tmp_path / "train.tsv", rows), kind="classification", dev_fraction=0.25, seed=3)
    assert task.kind == "classification" and task.labels == ("neg", "pos") and task.test is None
    assert len(task.train[0]) == 30 and len(task.dev[0]) == 10
    assert Counter(task.dev[1]) == {"neg": 5, "pos": 5}


def test_load_task_user_tagging_files(tmp_path):
    train = write(tmp_path / "train.conll", "Ann\tB-person\nsings\tO\n\nin\tO\nRome\tB-place\n")
    dev = write(tmp_path / "dev.conll", "Bob\tB-person\n")
    task = load_task(train, dev=dev, test=dev, kind="tagging")
    assert task.labels == ("O", "B-person", "B-place")
    assert task.train == ([["Ann", "sings"], ["in", "Rome"]], [["B-person", "O"], ["O", "B-place"]])
    assert task.dev == task.test == ([["Bob"]], [["B-person"]])


def test_load_task_errors(tmp_path):
    train = write(tmp_path / "train.tsv", "a\tx\nb\ty\n")
    with pytest.raises(ValueError, match="kind must be one of .*, got None"):
        load_task(train)
    with pytest.raises(ValueError, match=r"the test data \(.*test.tsv\) has labels the training data lacks: \['c'\]"):
        load_task(train, dev=train, test=write(tmp_path / "test.tsv", "c\tz\n"), kind="classification")
    with pytest.raises(ValueError, match="'sst2' has its own dev and test splits"):
        load_task("sst2", dev=train)
    with pytest.raises(ValueError, match="split must be one of"):
        load_sst2("validation")


# ---- the real data sets, through the checksum-verified loader ---------------------------------------------------

@needs("sst2")
@pytest.mark.parametrize("split, n", [("train", 6920), ("dev", 872), ("test", 1821)])
def test_sst2_counts(split, n):
    texts, labels = load_sst2(split)
    assert len(texts) == len(labels) == n
    assert set(labels) == set(SST2_LABELS)
    assert all(t == t.lower() and t == t.strip() for t in texts)


@needs("wnut17")
@pytest.mark.parametrize("split, n_sentences, n_tokens, n_entities", [
    ("train", 3394, 62730, 1975), ("dev", 1009, 15733, 836), ("test", 1287, 23394, 1079)])
def test_wnut17_counts(split, n_sentences, n_tokens, n_entities):
    sentences, tags = load_wnut17(split)
    assert len(sentences) == len(tags) == n_sentences
    assert [len(s) for s in sentences] == [len(t) for t in tags]
    assert sum(map(len, sentences)) == n_tokens
    assert {t for ts in tags for t in ts} == set(WNUT17_TAGS) and len(WNUT17_TAGS) == 13
    assert sum(t.startswith("B-") for ts in tags for t in ts) == n_entities
    assert all(w and w == w.strip() for s in sentences for w in s)


@needs("sst2")
def test_load_task_sst2():
    task = load_task("sst2")
    assert task.kind == "classification" and task.labels == ("0", "1")
    assert [len(part[0]) for part in (task.train, task.dev, task.test)] == [6920, 872, 1821]


def test_loader_verifies_checksum(tmp_path, monkeypatch):
    (tmp_path / "sst2").mkdir()
    write(tmp_path / "sst2" / "stsa.binary.dev", "1 a file that is not the real one\n")
    monkeypatch.setenv("TINYTRANSFORMER_DATA", str(tmp_path))
    with pytest.raises(ChecksumError, match="wrong SHA-256"):
        load_sst2("dev")
