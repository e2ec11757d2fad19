"""Using a fine-tuned model: build a head, predict, score, save and load; what `classify` and `tag` run.

    model = build_head("classify", config, labels)                a SequenceClassifier (or "tag": TokenClassifier)
                                                                  on a GPT or BERT body, as the config says
    probs = predict_proba(model, tokenizer, texts)                (N, K) class probabilities
    tags  = predict_tags(model, tokenizer, sentences, labels)     a tag per word of each sentence
    evaluate(model, tokenizer, labels, inputs, targets)           accuracy and macro P/R/F1, or entity F1
    save_finetuned(folder, model, tokenizer, labels); load_finetuned(folder) -> (model, tokenizer, meta)
    save_confusion_matrix(model, tokenizer, data, "dev", folder)   folder/confusion_dev.png

Each works on one head or on an ``Ensemble`` of them (probabilities averaged).
Texts go in one length-sorted batch after another, each padded only to its own
longest row, framed as the body reads them (``<bos> ...`` for a GPT with a word
tokenizer, ``<cls> ... <eos>`` for an encoder: ``data.encoding.frame``).
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import tokenizer_from_dict
from ..data.batching import length_batches, pad
from ..data.encoding import encode_texts, encode_words
from ..metrics import accuracy, classification_scores, entity_scores, token_accuracy
from ..models.heads import BODIES, Ensemble, SequenceClassifier, TokenClassifier, body_type
from ..nn import skip_init
from ..nn.lora import merged_state_dict
from ..plots import import_optional, import_pyplot, plot_confusion_matrix
from ..plots.backend import install_hint, missing_extra, note_once
from ..training.checkpoint import load_checkpoint, load_meta, save_checkpoint
from ..training.checkpoint_schema import is_bitagger
from .options import check_options, option
from .tagging import load_tagger, tag_sentences

HEADS = {"classify": SequenceClassifier, "tag": TokenClassifier}
KINDS = {"classify": "classifier", "tag": "tagger"}  # the task -> the kind of checkpoint its model is saved as


def build_head(task, config, labels, dropout=0.1, pooling="mean", body=None):
    """A fresh ``SequenceClassifier`` (task "classify") or ``TokenClassifier`` ("tag") for ``labels``, on the
    body ``config`` describes (a ``GPTConfig`` or a ``BertConfig``): a fresh one, or ``body`` itself."""
    if task == "classify":
        return SequenceClassifier(config, len(labels), pooling=pooling, dropout=dropout, body=body)
    if task == "tag":
        return TokenClassifier(config, len(labels), dropout=dropout, body=body)
    raise ValueError(f"build_head: task must be one of {tuple(HEADS)}, got {task!r}")


def first_member(model):
    """The model itself, or an ensemble's first member: where the task, sizes and block size are read."""
    return model.members[0] if isinstance(model, Ensemble) else model


def reads_both_ways(model) -> bool:
    """Whether the model's body is a bidirectional encoder, whose inputs are framed ``<cls> ... <eos>``."""
    return not first_member(model).body_kind.causal


# ------------------------------------------------------------- prediction
def predict_proba(model, tokenizer, texts, batch_size=256) -> np.ndarray:
    """Class probabilities (N, K) of each text, from a classifier or an ensemble of them."""
    head = first_member(model)
    ids = encode_texts(tokenizer, texts, head.body.config.block_size, reads_both_ways(model))
    out = np.zeros((len(ids), head.num_classes))  # (N, K)
    for batch in length_batches([len(s) for s in ids], batch_size):
        out[batch] = model.predict_proba(*pad([ids[i] for i in batch]))
    return out


def predict_tags(model, tokenizer, sentences, labels, batch_size=256) -> list:
    """The tag of every word of each sentence (lists of strings); words past the block size get "O"."""
    encoded = [encode_words(tokenizer, words, reads_both_ways(model)) for words in sentences]
    max_len = first_member(model).body.config.block_size
    out = [None] * len(encoded)
    for batch in length_batches([min(len(ids), max_len) for ids, _ in encoded], batch_size):
        predicted = model.predict(*pad([encoded[i][0][:max_len] for i in batch]))  # (B, T)
        for row, i in enumerate(batch):
            out[i] = [labels[predicted[row, end]] if end < max_len else "O" for end in encoded[i][1]]
    return out


def evaluate(model, tokenizer, labels, inputs, targets) -> dict:
    """Scores on one split: accuracy and macro P/R/F1, or entity-level P/R/F1 and token accuracy."""
    if isinstance(first_member(model), TokenClassifier):
        predicted = predict_tags(model, tokenizer, inputs, labels)
        scores = entity_scores(targets, predicted)
        return {"entity_f1": scores["f1"], "f1": scores["f1"], "precision": scores["precision"],
                "recall": scores["recall"], "token_accuracy": token_accuracy(targets, predicted)}
    predicted = [labels[i] for i in predict_proba(model, tokenizer, inputs).argmax(axis=1)]
    try:
        return classification_scores(targets, predicted, average="macro")
    except ImportError as err:  # scikit-learn is optional: accuracy alone, said once
        if missing_extra(err) is None:
            raise
        note_once(f"macro precision, recall and F1 left out (accuracy only), since scikit-learn is not installed: "
                  f"{install_hint('sklearn')}")
        return {"accuracy": accuracy(targets, predicted)}


def describe_scores(scores) -> str:
    """One line of the scores ``evaluate`` returns."""
    if "entity_f1" in scores:
        return (f"entity F1 {scores['f1']:.2%} (P {scores['precision']:.2%}, R {scores['recall']:.2%}), "
                f"token accuracy {scores['token_accuracy']:.2%}")
    if "f1" not in scores:  # without scikit-learn
        return f"accuracy {scores['accuracy']:.2%}"
    return (f"accuracy {scores['accuracy']:.2%}, macro F1 {scores['f1']:.2%} "
            f"(P {scores['precision']:.2%}, R {scores['recall']:.2%})")


def save_confusion_matrix(model, tokenizer, data, split, out_dir) -> Path:
    """``OUT/confusion_<split>.png``: the classifier's predictions on a split against the truth; None (said
    once) without matplotlib and scikit-learn."""
    try:
        plt, _ = import_pyplot(), import_optional("sklearn.metrics", "a confusion matrix")
    except ImportError as err:
        note_once(f"confusion matrices not drawn: {err}")
        return None
    texts, truth = getattr(data, split)
    predicted = [data.labels[i] for i in predict_proba(model, tokenizer, texts).argmax(axis=1)]
    path = Path(out_dir) / f"confusion_{split}.png"
    fig = plot_confusion_matrix(truth, predicted, labels=list(data.labels),
                                title=f"{split}: accuracy {accuracy(truth, predicted):.1%}", path=path)
    plt.close(fig)
    return path


# ------------------------------------------------------------ checkpoints
def save_finetuned(folder, model, tokenizer, labels, meta=None, overwrite=False):
    """A checkpoint of a fine-tuned head (or ``Ensemble``), of kind "classifier" or "tagger": weights, the
    body's type ("gpt" or "bert") and config, head settings, tokenizer and labels, everything
    ``load_finetuned`` needs (an ensemble's members must share them). ``meta`` may add what ``finetune``
    records ("recipe", "finetune", "history"); ``overwrite``: see ``save_checkpoint``. LoRA adapters are saved
    merged into the weights they adapt (``nn.lora.merged_state_dict``): a plain model, which loads as one."""
    head = first_member(model)

    def described(m):
        return m.body.config, m.dropout.p, getattr(m, "pooling", None)

    if isinstance(model, Ensemble) and any(described(m) != described(head) for m in model.members):
        raise ValueError("save_finetuned: the ensemble's members differ in their body config, dropout or pooling; "
                         "a checkpoint records one of each")
    settings = {"dropout": head.dropout.p, "pooling": getattr(head, "pooling", None),
                "members": len(model.members) if isinstance(model, Ensemble) else None}
    record = {**(meta or {}), "kind": "tagger" if isinstance(head, TokenClassifier) else "classifier",
              "head": settings, "labels": list(labels), "body_type": body_type(head.body.config),
              "model_config": head.body.config.to_dict(), "tokenizer": tokenizer.to_dict()}
    save_checkpoint(folder, merged_state_dict(model), None, record, overwrite=overwrite)


def load_finetuned(folder, task=None, reader="load_finetuned") -> tuple:
    """``(model, tokenizer, meta)`` from a folder ``save_finetuned`` (or ``tinytransformer finetune``) wrote.

    ``task`` ("classify" or "tag"), if given, must be the checkpoint's; a folder holding anything else
    is a ValueError saying what it holds and which command reads it (``reader`` is the one that does not).
    """
    accepted = {"classify": ("classifier",), "tag": ("tagger",), None: tuple(KINDS.values())}[task]
    state, _, meta = load_checkpoint(folder, holds=accepted, reader=reader)
    if is_bitagger(meta):
        raise ValueError(f"{folder} holds a BiTagger, not a head on a body: tasks.tagging.load_tagger reads it")
    config = BODIES[meta.get("body_type", "gpt")].config(**meta["model_config"])  # older checkpoints: a GPT body
    task, head = {kind: task for task, kind in KINDS.items()}[meta["kind"]], meta["head"]

    def build():
        return build_head(task, config, meta["labels"], head["dropout"], head["pooling"] or "mean")

    with skip_init():  # every weight is read from the checkpoint below (strictly): no random draw (GPT-2: seconds)
        model = build() if head["members"] is None else Ensemble([build() for _ in range(head["members"])])
    try:
        model.load_state_dict(state)
    except (KeyError, ValueError) as err:
        raise ValueError(f"{folder}: the arrays do not fit the model meta.json describes: {err}") from None
    model.eval()
    return model, tokenizer_from_dict(meta["tokenizer"]), meta


# ------------------------------------------------- `classify` and `tag`
def read_texts(path=None, stream=None, numbered=False) -> list:
    """The non-blank lines of a UTF-8 file (or of ``stream``, standard input), stripped: one text each;
    ``numbered``: ``(line_number, text)`` pairs, counting from 1 with the blank lines."""
    source = str(path) if path is not None else "standard input"
    try:
        if path is not None:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        else:
            lines = stream.read().splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{source}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    texts = [(number, line.strip()) for number, line in enumerate(lines, start=1) if line.strip()]
    if not texts:
        raise ValueError(f"{source} holds no text (one text per line expected)")
    return texts if numbered else [text for _, text in texts]


def note_cut(source, numbers, lengths, max_len, what):
    """Say in one line on standard error which lines of ``source`` are longer than the model's block of
    ``max_len`` tokens (``lengths`` in tokens), and ``what`` happens to the rest of them."""
    cut = [number for number, n in zip(numbers, lengths) if n > max_len]
    if cut:
        shown = ", ".join(map(str, cut[:10])) + (f" and {len(cut) - 10} more" if len(cut) > 10 else "")
        print(f"note: {source}: line{'s' if len(cut) > 1 else ''} {shown} {'are' if len(cut) > 1 else 'is'} longer "
              f"than the model's block of {max_len} tokens; {what}", file=sys.stderr, flush=True)


@dataclass
class ClassifyConfig:
    """``tinytransformer classify``: label each line of ``input`` (or standard input) with a fine-tuned classifier."""

    checkpoint: str = option(None, "the --out folder of `finetune`", metavar="DIR", required=True)
    input: str = option(None, "UTF-8 text, one per line (default: standard input)", metavar="FILE")

    def __post_init__(self):
        check_options(self)
        if self.checkpoint is None:
            raise ValueError("checkpoint: give the folder of a fine-tuned model")


@dataclass
class TagConfig(ClassifyConfig):
    """``tinytransformer tag``: tag each word (split on whitespace) of each line with a fine-tuned tagger."""


def print_classified(config: ClassifyConfig):
    """Print ``label<TAB>probability<TAB>text`` for each text."""
    model, tokenizer, meta = load_finetuned(config.checkpoint, task="classify", reader="classify")
    numbers, texts = zip(*read_texts(config.input, sys.stdin, numbered=True))
    block_size = first_member(model).body.config.block_size
    lengths = [len(ids) for ids in encode_texts(tokenizer, texts, None, reads_both_ways(model))]
    note_cut(config.input or "standard input", numbers, lengths, block_size,
             f"only the first {block_size} tokens of each are classified")
    for text, probs in zip(texts, predict_proba(model, tokenizer, texts)):
        print(f"{meta['labels'][probs.argmax()]}\t{probs.max():.4f}\t{text}")


def print_tagged(config: TagConfig):
    """Print ``word<TAB>tag`` for each word, a blank line between texts; the tagger is a BiTagger
    (``tasks/tagging.py``) or a tagging head on a body."""
    if is_bitagger(load_meta(config.checkpoint, holds=("tagger",), reader="tag")):
        model, vocab, _ = load_tagger(config.checkpoint, reader="tag")
        sentences = [text.split() for text in read_texts(config.input, sys.stdin)]
        return print_tags(sentences, tag_sentences(model, vocab, sentences))
    model, tokenizer, meta = load_finetuned(config.checkpoint, task="tag", reader="tag")
    numbers, texts = zip(*read_texts(config.input, sys.stdin, numbered=True))
    sentences = [text.split() for text in texts]
    block_size = first_member(model).body.config.block_size
    lengths = [len(encode_words(tokenizer, words, reads_both_ways(model))[0]) for words in sentences]
    note_cut(config.input or "standard input", numbers, lengths, block_size,
             "the words past it are tagged O without being read")
    print_tags(sentences, predict_tags(model, tokenizer, sentences, meta["labels"]))


def print_tags(sentences, tags):
    """``word<TAB>tag`` lines, a blank line between sentences."""
    for i, (words, word_tags) in enumerate(zip(sentences, tags)):
        print(("\n" if i else "") + "\n".join(f"{word}\t{tag}" for word, tag in zip(words, word_tags)))
