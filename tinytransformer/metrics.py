"""How good is a classifier, a tagger or a translator: accuracy, precision, recall, F1, what to count for
entities, exact match and BLEU.

For one class (or entity type), with TP the true positives, FP the false
positives and FN the false negatives:

    precision = TP / (TP + FP)     of what was predicted, the share that is right
    recall    = TP / (TP + FN)     of what is there, the share that was found
    F1        = 2 P R / (P + R)    their harmonic mean

A ratio whose denominator is zero counts as 0. Classification scores come from
scikit-learn (imported when called); ``average="macro"`` is the unweighted
mean over classes, ``"binary"`` the score of the class ``pos_label``.

Named-entity recognition is scored per entity, not per token (Tjong Kim Sang
and De Meulder 2003, the CoNLL ``conlleval`` script): an entity is a span of
tokens with a type, read from BIO tags (B-X begins an X, I-X continues it, O is
outside any entity), and a predicted entity is correct only if a true entity
has exactly its start, end and type. Half a name found, or the right span with
the wrong type, earns nothing. As in ``conlleval``, an I-X that does not
continue an X (after O, after another type, or first in the sentence) starts
a new entity rather than being dropped.

Token accuracy, the share of tokens tagged right, is also here, to show why it
misleads: 92.6% of the tokens of WNUT-17's test set are O, so tagging every
token O scores 92.6% token accuracy and an entity F1 of 0.

A translation is scored as a whole: exact match (the output equals the
reference) and corpus BLEU (Papineni et al. 2002), the geometric mean of the
clipped n-gram precisions p_1 .. p_4 over the corpus, times a brevity penalty
exp(1 - r/c) when the outputs (c tokens in all) are shorter than the
references (r tokens). The figures of these scores (the confusion matrix) are
drawn by ``tinytransformer.plots``.
"""

import math
from collections import Counter

import numpy as np


def _check_pair(y_true, y_pred, caller) -> tuple:
    y_true, y_pred = list(y_true), list(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{caller}: y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if not y_true:
        raise ValueError(f"{caller}: no labels to score")
    return y_true, y_pred


def accuracy(y_true, y_pred) -> float:
    """The share of predictions equal to the truth."""
    y_true, y_pred = _check_pair(y_true, y_pred, "accuracy")
    return sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true)


def classification_scores(y_true, y_pred, average: str = "macro", pos_label=1) -> dict:
    """``{"accuracy", "precision", "recall", "f1"}`` of a classifier, with scikit-learn's ``average``.

    ``pos_label`` names the positive class when ``average="binary"`` (for
    SST-2's string labels, ``pos_label="1"``) and is ignored otherwise.
    """
    from sklearn.metrics import precision_recall_fscore_support

    y_true, y_pred = _check_pair(y_true, y_pred, "classification_scores")
    if average == "binary" and pos_label not in y_true + y_pred:
        raise ValueError(f"classification_scores: pos_label={pos_label!r} is not among the labels "
                         f"{sorted(set(y_true + y_pred), key=str)}")
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average=average, pos_label=pos_label, zero_division=0)
    return {"accuracy": accuracy(y_true, y_pred), "precision": float(precision), "recall": float(recall),
            "f1": float(f1)}


def confusion_matrix(y_true, y_pred, labels=None) -> np.ndarray:
    """``C[i, j]``: how many examples of class ``labels[i]`` were predicted as ``labels[j]`` (sorted labels by default)."""
    from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

    y_true, y_pred = _check_pair(y_true, y_pred, "confusion_matrix")
    return sklearn_confusion_matrix(y_true, y_pred, labels=labels)


def _check_sentences(true_tags, pred_tags, caller) -> None:
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"{caller}: {len(true_tags)} true sentences but {len(pred_tags)} predicted")
    for i, (t, p) in enumerate(zip(true_tags, pred_tags)):
        if isinstance(t, str) or isinstance(p, str):
            raise TypeError(f"{caller}: sentence {i} is a string; pass lists of tag lists "
                            "(wrap a single sentence in a list)")
        if len(t) != len(p):
            raise ValueError(f"{caller}: sentence {i} has {len(t)} true tags but {len(p)} predicted")


def token_accuracy(true_tags, pred_tags) -> float:
    """The share of tokens whose predicted tag equals the true one, over lists of tag lists."""
    true_tags, pred_tags = list(true_tags), list(pred_tags)
    _check_sentences(true_tags, pred_tags, "token_accuracy")
    total = sum(len(t) for t in true_tags)
    if total == 0:
        raise ValueError("token_accuracy: no tokens to score")
    return sum(a == b for t, p in zip(true_tags, pred_tags) for a, b in zip(t, p)) / total


def bio_entities(tags) -> list:
    """The entities of one sentence's BIO tags, as ``(type, start, end)`` with ``end`` exclusive.

    >>> bio_entities(["B-person", "I-person", "O", "I-location", "B-location"])
    [('person', 0, 2), ('location', 3, 4), ('location', 4, 5)]
    """
    entities = []
    current = None  # [type, start] of the entity being read
    for i, tag in enumerate(tags):
        if tag == "O":
            prefix, kind = "O", None
        elif isinstance(tag, str) and tag[:2] in ("B-", "I-") and len(tag) > 2:
            prefix, kind = tag[0], tag[2:]
        else:
            raise ValueError(f"bio_entities: tag {tag!r} at position {i} is not 'O', 'B-<type>' or 'I-<type>'")
        continues = prefix == "I" and current is not None and current[0] == kind
        if current is not None and not continues:
            entities.append((current[0], current[1], i))
            current = None
        if prefix == "B" or (prefix == "I" and not continues):
            current = [kind, i]
    if current is not None:
        entities.append((current[0], current[1], len(tags)))
    return entities


def _prf(correct: int, n_true: int, n_pred: int) -> dict:
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true": n_true, "predicted": n_pred,
            "correct": correct}


def entity_scores(true_tags, pred_tags) -> dict:
    """Entity-level precision, recall and F1 over lists of BIO tag lists, overall and per type.

    Returns ``{"precision", "recall", "f1", "true", "predicted", "correct",
    "per_type": {type: the same keys}}``: ``true`` and ``predicted`` count
    entities, ``correct`` those predicted with exactly a true entity's span
    and type. Scores are fractions in [0, 1].
    """
    true_tags, pred_tags = list(true_tags), list(pred_tags)
    _check_sentences(true_tags, pred_tags, "entity_scores")
    true_set = {(s, *e) for s, tags in enumerate(true_tags) for e in bio_entities(tags)}
    pred_set = {(s, *e) for s, tags in enumerate(pred_tags) for e in bio_entities(tags)}
    scores = _prf(len(true_set & pred_set), len(true_set), len(pred_set))
    types = sorted({e[1] for e in true_set | pred_set})
    scores["per_type"] = {
        kind: _prf(sum(e[1] == kind for e in true_set & pred_set), sum(e[1] == kind for e in true_set),
                   sum(e[1] == kind for e in pred_set))
        for kind in types
    }
    return scores


def exact_match(predictions, references) -> float:
    """The fraction of predictions equal to their reference (strings, or token lists)."""
    if len(predictions) != len(references) or not references:
        raise ValueError(f"exact_match: need as many predictions as references (> 0), "
                         f"got {len(predictions)} and {len(references)}")
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(predictions, references, max_n=4) -> float:
    """Corpus BLEU in [0, 1] of token lists (or strings, split on spaces); one reference each.

    BLEU = BP * exp(mean_n log p_n), p_n = clipped n-gram matches / n-grams written,
    BP = min(1, exp(1 - r / c)). 0 when some p_n is 0.
    """
    if len(predictions) != len(references) or not references:
        raise ValueError(f"bleu: need as many predictions as references (> 0), got {len(predictions)} and {len(references)}")
    split = [(p.split() if isinstance(p, str) else list(p), r.split() if isinstance(r, str) else list(r))
             for p, r in zip(predictions, references)]
    log_precision = 0.0
    for n in range(1, max_n + 1):
        matched = sum(sum((_ngrams(p, n) & _ngrams(r, n)).values()) for p, r in split)  # clipped counts
        written = sum(max(len(p) - n + 1, 0) for p, _ in split)
        if matched == 0:
            return 0.0
        log_precision += math.log(matched / written) / max_n
    c, r = sum(len(p) for p, _ in split), sum(len(r) for _, r in split)
    brevity = 1.0 if c > r else math.exp(1 - r / c)
    return brevity * math.exp(log_precision)
