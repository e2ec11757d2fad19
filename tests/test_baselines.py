"""Baselines: they learn a tiny separable task, and on the real data they reach the documented numbers."""

import numpy as np
import pytest

from tinytransformer.baselines import BagOfWordsClassifier, MostFrequentTagTagger
from tinytransformer.data import DATASETS, data_dir
from tinytransformer.data.tasks import load_sst2, load_wnut17
from tinytransformer.metrics import accuracy, entity_scores


def needs(name):
    present = all((data_dir() / relpath).is_file() for relpath in DATASETS[name])
    return pytest.mark.skipif(not present, reason=f"{name} is not in the data directory {data_dir()} "
                                                  "(set TINYTRANSFORMER_DATA; tests never download)")


def synthetic_reviews(n, rng):
    """Sentences of filler words plus one word that gives the label away."""
    filler = ["the", "film", "plot", "actor", "scene", "was", "and", "very", "music", "story"]
    texts, labels = [], []
    for _ in range(n):
        label = str(rng.integers(2))
        cue = rng.choice(["great", "wonderful", "superb"] if label == "1" else ["awful", "boring", "dreadful"])
        words = [*rng.choice(filler, size=6), cue]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.mark.parametrize("options", [{}, {"weighting": "tfidf", "ngram_range": (1, 2)}])
def test_bag_of_words_learns_a_separable_task(rng, options):
    train, test = synthetic_reviews(200, rng), synthetic_reviews(100, rng)
    model = BagOfWordsClassifier(**options).fit(*train)
    assert model.classes == ["0", "1"]
    assert accuracy(test[1], model.predict(test[0])) == 1.0  # chance is about 0.5


def test_most_frequent_tag_tagger():
    sentences = [["Paris", "is", "nice"], ["paris", "Hilton", "is", "here"], ["Paris", "Hilton"], ["May", "May"]]
    tags = [["B-loc", "O", "O"], ["B-per", "I-per", "O", "O"], ["B-per", "I-per"], ["B-per", "O"]]
    tagger = MostFrequentTagTagger().fit(sentences, tags)
    # "Paris": B-loc once, B-per once -> the tag seen first; "May": a tie too; "London" unseen -> O
    assert tagger.predict([["Paris", "Hilton", "in", "London"], ["May"]]) == [["B-loc", "I-per", "O", "O"], ["B-per"]]
    lower = MostFrequentTagTagger(lower=True).fit(sentences, tags)
    assert lower.predict([["PARIS", "hilton"]]) == [["B-per", "I-per"]]  # paris: B-per twice, B-loc once


def test_baseline_errors():
    with pytest.raises(RuntimeError, match="call fit first"):
        BagOfWordsClassifier().predict(["a"])
    with pytest.raises(RuntimeError, match="call fit first"):
        MostFrequentTagTagger().predict([["a"]])
    with pytest.raises(ValueError, match="need at least two classes"):
        BagOfWordsClassifier().fit(["a b", "c d"], ["x", "x"])
    with pytest.raises(ValueError, match="weighting must be 'count' or 'tfidf'"):
        BagOfWordsClassifier(weighting="binary")
    with pytest.raises(ValueError, match="sentence 0 has 2 tokens but 1 tags"):
        MostFrequentTagTagger().fit([["a", "b"]], [["O"]])


@needs("sst2")
def test_bag_of_words_on_sst2():
    model = BagOfWordsClassifier().fit(*load_sst2("train"))
    texts, labels = load_sst2("test")
    test_accuracy = accuracy(labels, model.predict(texts))
    assert test_accuracy > 0.75  # measured: 0.809; the data's README quotes roughly 0.78-0.80
    assert np.mean([y == "1" for y in labels]) < 0.51  # so chance (the majority class) is about 0.5


@needs("wnut17")
def test_most_frequent_tag_on_wnut17():
    train, (sentences, tags) = load_wnut17("train"), load_wnut17("test")
    cased = entity_scores(tags, MostFrequentTagTagger().fit(*train).predict(sentences))["f1"]
    lower = entity_scores(tags, MostFrequentTagTagger(lower=True).fit(*train).predict(sentences))["f1"]
    assert cased == pytest.approx(0.060, abs=0.002)  # measured 0.0604
    assert lower == pytest.approx(0.090, abs=0.002)  # measured 0.0900
