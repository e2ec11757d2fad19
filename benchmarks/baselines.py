"""Baselines for the fine-tuning tasks: bag-of-words logistic regression on SST-2, most-frequent tag on WNUT-17.

    TINYTRANSFORMER_DATA=/path/to/data python benchmarks/baselines.py

Prints a table and writes benchmarks/results/baselines.json. Needs the SST-2
and WNUT-17 files in the data directory (or the network to download them) and
scikit-learn. Takes a few seconds.
"""

import json
import platform
import time
from pathlib import Path

import sklearn

from tinytransformer.baselines import BagOfWordsClassifier, MostFrequentTagTagger
from tinytransformer.data.tasks import load_sst2, load_wnut17
from tinytransformer.metrics import classification_scores, entity_scores, token_accuracy
from tinytransformer.training.checkpoint import atomic_write_text

RESULTS = Path(__file__).parent / "results" / "baselines.json"


def sst2_runs() -> list:
    train, splits = load_sst2("train"), {s: load_sst2(s) for s in ("dev", "test")}
    runs = []
    for name, options in [("bag of words, counts, unigrams (default)", {}),
                          ("bag of words, tf-idf, uni+bigrams", {"weighting": "tfidf", "ngram_range": (1, 2)})]:
        start = time.perf_counter()
        model = BagOfWordsClassifier(**options).fit(*train)
        seconds = time.perf_counter() - start
        for split, (texts, labels) in splits.items():
            scores = classification_scores(labels, model.predict(texts), average="binary", pos_label="1")
            runs.append({"task": "sst2", "model": name, "options": options, "split": split,
                         "fit_seconds": round(seconds, 2), **scores})
    return runs


def wnut17_runs() -> list:
    train, splits = load_wnut17("train"), {s: load_wnut17(s) for s in ("dev", "test")}
    runs = []
    for split, (_, tags) in splits.items():
        all_o = [["O"] * len(t) for t in tags]
        runs.append({"task": "wnut17", "model": "every token O", "split": split,
                     "token_accuracy": token_accuracy(tags, all_o),
                     **{k: v for k, v in entity_scores(tags, all_o).items() if k != "per_type"}})
    for lower in (False, True):
        tagger = MostFrequentTagTagger(lower=lower).fit(*train)
        for split, (sentences, tags) in splits.items():
            predicted = tagger.predict(sentences)
            scores = entity_scores(tags, predicted)
            runs.append({"task": "wnut17", "model": f"most frequent tag{', lower-cased' if lower else ''}",
                         "split": split, "token_accuracy": token_accuracy(tags, predicted),
                         **{k: v for k, v in scores.items() if k != "per_type"},
                         "per_type_f1": {t: s["f1"] for t, s in scores["per_type"].items()}})
    return runs


def main():
    runs = sst2_runs() + wnut17_runs()
    print(f"{'task':7s} {'model':42s} {'split':5s} {'accuracy':>9s} {'P':>6s} {'R':>6s} {'F1':>6s}")
    for r in runs:
        acc = r.get("accuracy", r.get("token_accuracy"))
        print(f"{r['task']:7s} {r['model']:42s} {r['split']:5s} {acc:9.2%} {r['precision']:6.1%} {r['recall']:6.1%} "
              f"{r['f1']:6.1%}")
    print("(SST-2: accuracy, and P/R/F1 of the positive class; WNUT-17: token accuracy, and entity-level P/R/F1)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "scikit-learn": sklearn.__version__}
    atomic_write_text(RESULTS, json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
