"""Metrics on hand-made cases whose scores are worked out by hand, and entity spans against conlleval's rules."""

import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytransformer.metrics import (
    accuracy, bio_entities, bleu, classification_scores, confusion_matrix, entity_scores, exact_match, token_accuracy,
)

# ---- classification ---------------------------------------------------------------------------------------------

Y_TRUE = [1, 1, 1, 0, 0, 0]
Y_PRED = [1, 1, 0, 0, 1, 1]


def test_classification_scores_by_hand():
    # class 1: TP 2, FP 2, FN 1 -> P 1/2, R 2/3, F1 4/7.  class 0: TP 1, FP 1, FN 2 -> P 1/2, R 1/3, F1 2/5
    binary = classification_scores(Y_TRUE, Y_PRED, average="binary", pos_label=1)
    assert binary == pytest.approx({"accuracy": 3 / 6, "precision": 1 / 2, "recall": 2 / 3, "f1": 4 / 7}, abs=1e-12)
    macro = classification_scores(Y_TRUE, Y_PRED)
    assert macro == pytest.approx({"accuracy": 1 / 2, "precision": 1 / 2, "recall": 1 / 2, "f1": (4 / 7 + 2 / 5) / 2},
                                  abs=1e-12)
    strings = classification_scores([str(y) for y in Y_TRUE], [str(y) for y in Y_PRED], average="binary",
                                    pos_label="1")
    assert strings == pytest.approx(binary, abs=1e-12)
    assert accuracy(["a", "b", "c", "a"], ["a", "b", "a", "b"]) == 0.5


def test_confusion_matrix_by_hand():
    y_true = ["cat", "cat", "dog", "dog", "dog", "eel"]
    y_pred = ["cat", "dog", "dog", "dog", "eel", "cat"]
    assert confusion_matrix(y_true, y_pred).tolist() == [[1, 1, 0], [0, 2, 1], [1, 0, 0]]
    assert confusion_matrix(y_true, y_pred, labels=["eel", "dog", "cat"]).tolist() == [[0, 0, 1], [1, 2, 0], [0, 1, 1]]


def test_classification_errors():
    with pytest.raises(ValueError, match="accuracy: y_true has 2 labels but y_pred has 1"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="no labels to score"):
        classification_scores([], [])
    with pytest.raises(ValueError, match=r"pos_label=1 is not among the labels \['0', '1'\]"):
        classification_scores(["0", "1"], ["1", "1"], average="binary")


def test_scikit_learn_and_matplotlib_are_imported_only_when_needed():
    code = ("import sys, tinytransformer.metrics, tinytransformer.baselines, tinytransformer.data; "
            "print(sorted({'sklearn', 'matplotlib'} & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- entities from BIO tags -------------------------------------------------------------------------------------

@pytest.mark.parametrize("tags, entities", [
    ([], []),
    (["O", "O"], []),
    (["B-per", "I-per", "O", "B-loc"], [("per", 0, 2), ("loc", 3, 4)]),
    (["B-per", "B-per", "I-per"], [("per", 0, 1), ("per", 1, 3)]),          # adjacent entities of one type
    (["I-per", "I-per", "O"], [("per", 0, 2)]),                              # I- first in the sentence starts one
    (["O", "I-loc", "B-loc"], [("loc", 1, 2), ("loc", 2, 3)]),               # I- after O starts one
    (["B-per", "I-loc", "I-loc"], [("per", 0, 1), ("loc", 1, 3)]),           # I- of another type starts one
    (["B-per", "I-per", "B-loc", "I-loc"], [("per", 0, 2), ("loc", 2, 4)]),
    (["B-creative-work", "I-creative-work"], [("creative-work", 0, 2)]),     # types may hold hyphens
])
def test_bio_entities(tags, entities):
    assert bio_entities(tags) == entities


def conlleval_entities(tags):
    """Entities by the start/end rules of conlleval (its startOfChunk/endOfChunk, BIO part), written as rules."""
    entities, start, prev_tag, prev_type = [], None, "O", ""
    for i, label in enumerate([*tags, "O"]):
        tag, kind = ("O", "") if label == "O" else label.split("-", 1)
        ends = prev_tag != "O" and (tag in ("B", "O") or prev_type != kind)
        starts = tag == "B" or (tag == "I" and (prev_tag == "O" or prev_type != kind))
        if ends:
            entities.append((prev_type, start, i))
        if starts:
            start = i
        prev_tag, prev_type = tag, kind
    return entities


@given(st.lists(st.sampled_from(["O", "B-a", "I-a", "B-b", "I-b"]), max_size=12))
def test_bio_entities_match_conlleval_rules(tags):
    assert bio_entities(tags) == conlleval_entities(tags)


TRUE = [["B-person", "I-person", "O", "B-location", "O"],
        ["B-group", "B-group", "O", "B-product"],
        ["O", "B-person", "I-person"],
        ["O", "O"],
        ["B-product", "I-product"]]
PRED = [["B-person", "O", "O", "B-location", "O"],        # half the person (wrong), the location (right)
        ["B-group", "I-group", "O", "B-corporation"],     # two adjacent groups merged (wrong), wrong type (wrong)
        ["O", "I-person", "I-person"],                    # starts with I-: same span and type (right)
        ["I-location", "O"],                              # an entity where there is none
        ["O", "O"]]                                       # a product missed


def test_entity_scores_by_hand():
    # 7 true entities, 6 predicted, 2 correct: P = 2/6, R = 2/7, F1 = 2PR/(P+R) = 4/13
    scores = entity_scores(TRUE, PRED)
    assert (scores["true"], scores["predicted"], scores["correct"]) == (7, 6, 2)
    assert scores["precision"] == pytest.approx(1 / 3, abs=1e-12)
    assert scores["recall"] == pytest.approx(2 / 7, abs=1e-12)
    assert scores["f1"] == pytest.approx(4 / 13, abs=1e-12)
    per_type = {t: (s["true"], s["predicted"], s["correct"], round(s["f1"], 12))
                for t, s in scores["per_type"].items()}
    assert per_type == {"corporation": (0, 1, 0, 0.0), "group": (2, 1, 0, 0.0), "location": (1, 2, 1, round(2 / 3, 12)),
                        "person": (2, 2, 1, 0.5), "product": (2, 0, 0, 0.0)}


def test_entity_scores_perfect_and_empty():
    assert entity_scores(TRUE, TRUE)["f1"] == 1.0
    nothing = entity_scores([["O", "O"]], [["O", "O"]])
    assert (nothing["precision"], nothing["recall"], nothing["f1"], nothing["per_type"]) == (0.0, 0.0, 0.0, {})


def test_token_accuracy_misleads():
    assert token_accuracy(TRUE, PRED) == 9 / 16  # more than half the tokens right, F1 4/13
    # when entities are rare, a tagger that never finds one gets nearly every token right
    sparse_true = [["O"] * 19 + ["B-person"]] * 5
    sparse_all_o = [["O"] * 20] * 5
    assert token_accuracy(sparse_true, sparse_all_o) == 0.95
    assert entity_scores(sparse_true, sparse_all_o)["f1"] == 0.0


def test_tagging_errors():
    with pytest.raises(ValueError, match="bio_entities: tag 'PER' at position 1 is not 'O', 'B-<type>' or 'I-<type>'"):
        bio_entities(["O", "PER"])
    with pytest.raises(ValueError, match="tag 'B-' at position 0"):
        bio_entities(["B-"])
    with pytest.raises(ValueError, match="entity_scores: sentence 1 has 2 true tags but 1 predicted"):
        entity_scores([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="token_accuracy: 2 true sentences but 1 predicted"):
        token_accuracy([["O"], ["O"]], [["O"]])
    with pytest.raises(TypeError, match="wrap a single sentence in a list"):
        entity_scores(["O", "B-x"], ["O", "B-x"])


# ---- translation (exact match, BLEU) ----------------------------------------------------------------------------

def test_exact_match_and_bleu():
    assert exact_match(["a b", "c"], ["a b", "d"]) == 0.5
    assert bleu(["one two three four"], ["one two three four"]) == pytest.approx(1.0)
    assert bleu(["one two"], ["three four"]) == 0.0
    # p1 = 3/4, p2 = 2/3, p3 = 1/2 (p4 = 0/1 would make BLEU-4 zero): (3/4 * 2/3 * 1/2)^(1/3), same length
    assert bleu(["a b c x"], ["a b c d"], max_n=3) == pytest.approx((1 / 4) ** (1 / 3))
    # shorter output: brevity penalty exp(1 - 4/2)
    assert bleu(["a b"], ["a b c d"], max_n=2) == pytest.approx(math.exp(1 - 4 / 2))
    with pytest.raises(ValueError, match="as many predictions"):
        bleu(["a"], [])
