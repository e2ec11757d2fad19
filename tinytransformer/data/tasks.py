"""Labelled data for fine-tuning: sentence classification and token tagging, built in or from your files.

Two public benchmarks come through ``fetch`` (the data directory first, then
the network, always verified by SHA-256):

- SST-2 (Socher et al. 2013, the sentence-level binary split of Kim 2014):
  movie-review sentences, lower-cased and tokenised, labelled "0" (negative)
  or "1" (positive); 6,920 / 872 / 1,821 sentences in train / dev / test.
- WNUT-17 (Derczynski et al. 2017, "Results of the WNUT2017 Shared Task on
  Novel and Emerging Entity Recognition"): tweets, Reddit and YouTube comments
  with six entity types in BIO tags (13 tags with "O"); 3,394 / 1,009 / 1,287
  sentences. Two quirks of the files: in the training file most sentence
  breaks are a line holding a lone tab, and two tokens of the dev file carry
  invisible characters (U+200B, U+FEFF) that are kept as they are.

Your own files:

- classification: one example per line, ``label<TAB>text`` (``.tsv``, ``.txt``,
  anything but ``.csv``) or ``label,text`` (``.csv``, read by the ``csv``
  module, so a text holding commas goes in double quotes). Blank lines are
  skipped, and so is a first line that reads ``label<TAB>text`` (a header).
- tagging: CoNLL style, one ``token<TAB>tag`` per line, a blank line (or a
  line of whitespace) between sentences.

A malformed line stops loading with its file and line number, for example
``reviews.tsv:17: expected 'label<TAB>text', got 1 field``; so does a file of
the other kind: a CoNLL file read for classification (every "text" one token
that reads as a tag) or a ``label<TAB>text`` file read for tagging (a "tag"
with spaces, or a ``label<TAB>text`` header).

Labels are kept as strings everywhere (SST-2's are "0" and "1"), so built-in
and user data look alike; ``TaskData.labels`` fixes the order that turns them
into class ids.
"""

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from .datasets import train_test_split
from .download import fetch

SPLITS = ("train", "dev", "test")
SST2_LABELS = ("0", "1")
WNUT17_FILES = {"train": "wnut17/wnut17train.conll", "dev": "wnut17/emerging.dev.conll",
                "test": "wnut17/emerging.test.annotated"}
WNUT17_TYPES = ("corporation", "creative-work", "group", "location", "person", "product")
WNUT17_TAGS = ("O", *(f"{prefix}-{t}" for t in WNUT17_TYPES for prefix in "BI"))
BUILT_IN_TASKS = {"sst2": "classification", "wnut17": "tagging"}
KINDS = ("classification", "tagging")
TAG = re.compile(r"(O|[BIESLU]-\S+)\Z")  # a BIO/BIOES tag: how a CoNLL file given for classification shows itself


def _not_utf8(path, err) -> ValueError:
    return ValueError(f"{path}: not UTF-8 text: byte {err.object[err.start]:#04x} at offset {err.start}")


def _lines(path):
    """``(line_number, line)`` for each line of a UTF-8 file, the line ending removed."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for number, line in enumerate(f, start=1):
                yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err) from None


def _fields_error(path, number, expected, fields, line) -> ValueError:
    hint = " (the fields must be separated by a tab)" if len(fields) == 1 and " " in line.strip() else ""
    return ValueError(f"{path}:{number}: expected {expected!r}, got {len(fields)} "
                      f"field{'s' if len(fields) != 1 else ''}{hint}: {line[:80]!r}")


def _check_file(path, caller):
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{caller}: no file at {path.resolve()}")
    return path


def _csv_rows(path):
    """``(line_number, fields, line)`` per CSV record; a quoted field may span lines."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            for row in reader:
                yield reader.line_num, row, ",".join(row)
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err) from None


def load_classification(path) -> tuple:
    """``(texts, labels)``, two lists of strings, from a ``label<TAB>text`` file (``label,text`` for ``.csv``)."""
    path = _check_file(path, "load_classification")
    if path.suffix.lower() == ".csv":
        rows, expected = _csv_rows(path), "label,text"
    else:
        rows = ((number, line.rstrip().split("\t"), line) for number, line in _lines(path))
        expected = "label<TAB>text"
    texts, labels, first, breaks = [], [], None, False
    for number, fields, line in rows:
        if not line.strip():
            breaks = breaks or bool(texts)  # a blank line after examples: CoNLL's sentence break?
            continue
        fields = [f.strip() for f in fields]
        if number == 1 and [f.lower() for f in fields] == ["label", "text"]:
            continue
        if len(fields) != 2:
            raise _fields_error(path, number, expected, fields, line)
        label, text = fields
        if not label or not text:
            raise ValueError(f"{path}:{number}: empty {'label' if not label else 'text'} in {line[:80]!r}")
        labels.append(label)
        texts.append(text)
        first = first or (number, line)
    if not texts:
        raise ValueError(f"load_classification: {path} holds no examples")
    if all(" " not in t for t in texts) and (all(TAG.match(t) for t in texts) or (breaks and len(set(labels)) > 10)):
        raise ValueError(f"{path}:{first[0]}: {first[1][:80]!r} and every other line read as CoNLL token<TAB>tag: "
                         "a tagging file, not label<TAB>text for classification (`finetune --task tag` reads it)")
    return texts, labels


def load_tagging(path) -> tuple:
    """``(sentences, tags)``, two lists of lists of strings, from a CoNLL ``token<TAB>tag`` file."""
    path = _check_file(path, "load_tagging")
    sentences, tags = [], []
    words, word_tags = [], []
    for number, line in _lines(path):
        if not line.strip():  # a sentence break; WNUT-17's training file writes many as a lone tab
            if words:
                sentences.append(words)
                tags.append(word_tags)
                words, word_tags = [], []
            continue
        fields = [f.strip() for f in line.strip().split("\t")]
        if len(fields) != 2:
            raise _fields_error(path, number, "token<TAB>tag", fields, line)
        if " " in fields[1] or (number == 1 and [f.lower() for f in fields] == ["label", "text"]):
            raise ValueError(f"{path}:{number}: {line[:80]!r} reads as label<TAB>text, not CoNLL token<TAB>tag (a tag "
                             "has no spaces): a classification file (`finetune --task classify` reads it)")
        words.append(fields[0])
        word_tags.append(fields[1])
    if words:
        sentences.append(words)
        tags.append(word_tags)
    if not sentences:
        raise ValueError(f"load_tagging: {path} holds no sentences")
    return sentences, tags


def _check_split(split, caller):
    if split not in SPLITS:
        raise ValueError(f"{caller}: split must be one of {SPLITS}, got {split!r}")


def load_sst2(split: str = "train") -> tuple:
    """``(texts, labels)`` of SST-2's ``split`` ("train", "dev" or "test"); labels are "0" or "1"."""
    _check_split(split, "load_sst2")
    path = fetch(f"sst2/stsa.binary.{split}")
    texts, labels = [], []
    for number, line in _lines(path):
        label, _, text = line.partition(" ")
        if label not in SST2_LABELS or not text.strip():
            raise ValueError(f"{path}:{number}: expected '<0|1> <sentence>', got {line[:80]!r}")
        labels.append(label)
        texts.append(text.strip())
    return texts, labels


def load_wnut17(split: str = "train") -> tuple:
    """``(sentences, tags)`` of WNUT-17's ``split`` ("train", "dev" or "test"), tags among ``WNUT17_TAGS``."""
    _check_split(split, "load_wnut17")
    return load_tagging(fetch(WNUT17_FILES[split]))


def split_train_dev(texts, labels, dev_fraction: float = 0.1, seed: int = 0, stratify=None) -> tuple:
    """``(train_texts, train_labels), (dev_texts, dev_labels)``: a random split by scikit-learn's ``train_test_split``.

    ``stratify=None`` stratifies classification labels (each class keeps its
    share in both parts) and not tagging ones (lists of tags per sentence).
    """
    texts, labels = list(texts), list(labels)
    if len(texts) != len(labels):
        raise ValueError(f"split_train_dev: {len(texts)} texts but {len(labels)} labels")
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"split_train_dev: dev_fraction must lie in (0, 1), got {dev_fraction}")
    if stratify is None:
        stratify = all(isinstance(label, str) for label in labels)
    try:
        x_train, x_dev, y_train, y_dev = train_test_split(
            texts, labels, test_size=dev_fraction, random_state=seed, stratify=labels if stratify else None)
    except ImportError as err:
        raise ImportError(f"split_train_dev: {err}; or give a dev file (--dev) instead of holding one out",
                          name="sklearn") from err
    except ValueError as err:
        raise ValueError(f"split_train_dev: cannot split {len(texts)} examples with dev_fraction={dev_fraction}"
                         f"{' stratified' if stratify else ''} ({err})") from None
    return (x_train, y_train), (x_dev, y_dev)


@dataclass
class TaskData:
    """A task's splits, each ``(inputs, targets)``; ``labels[i]`` is the label (or tag) of class id ``i``.

    For classification the inputs are strings and the targets labels; for
    tagging the inputs are lists of tokens and the targets lists of tags.
    ``test`` is None when no test file was given.
    """

    kind: str
    labels: tuple
    train: tuple
    dev: tuple
    test: tuple | None = None


def _label_order(kind, targets) -> tuple:
    seen = set(targets) if kind == "classification" else {tag for tags in targets for tag in tags}
    if kind == "tagging" and "O" in seen:
        return ("O", *sorted(seen - {"O"}))
    return tuple(sorted(seen))


def load_task(name_or_path, dev=None, test=None, kind=None, dev_fraction: float = 0.1, seed: int = 0) -> TaskData:
    """A task ready to fine-tune on: "sst2", "wnut17", or your training file with ``kind``.

    For your own files, ``kind`` is "classification" or "tagging"; ``dev`` and
    ``test`` name the other files. Without ``dev``, a ``dev_fraction`` of the
    training file is held out (``split_train_dev`` with ``seed``). Every dev
    or test label must occur in training, since a model cannot predict a class
    it never saw.
    """
    if name_or_path in BUILT_IN_TASKS:
        if dev is not None or test is not None:
            raise ValueError(f"load_task: {name_or_path!r} has its own dev and test splits; dev and test must be None")
        kind = BUILT_IN_TASKS[name_or_path]
        load = load_sst2 if name_or_path == "sst2" else load_wnut17
        labels = SST2_LABELS if name_or_path == "sst2" else WNUT17_TAGS
        return TaskData(kind, labels, load("train"), load("dev"), load("test"))
    if kind not in KINDS:
        raise ValueError(f"load_task: {str(name_or_path)!r} is not a built-in task {tuple(BUILT_IN_TASKS)}, so kind must be one "
                         f"of {KINDS}, got {kind!r}")
    load = load_classification if kind == "classification" else load_tagging
    train = load(name_or_path)
    labels = _label_order(kind, train[1])
    dev_data = load(dev) if dev is not None else None
    if dev_data is None:
        train, dev_data = split_train_dev(*train, dev_fraction=dev_fraction, seed=seed)
    test_data = load(test) if test is not None else None
    for split, path, data in (("dev", dev, dev_data), ("test", test, test_data)):
        unseen = set(_label_order(kind, data[1])) - set(labels) if data is not None else set()
        if unseen:
            raise ValueError(f"load_task: the {split} data{f' ({path})' if path else ''} has labels the training "
                             f"data lacks: {sorted(unseen)}; training labels: {list(labels)}")
    return TaskData(kind, labels, train, dev_data, test_data)
