"""Fine-tuning report: `tinytransformer finetune` on SST-2 and WNUT-17 against the baselines, several seeds.

    TINYTRANSFORMER_DATA=/path/to/data python benchmarks/finetune_report.py [--seeds 3] [--tasks sst2 wnut17]

Every model comes from the command line exactly as a user runs it, on the data
written out as the user's files (SST-2 as ``label<TAB>text``, WNUT-17's CoNLL
files as they are):

    tinytransformer finetune --task classify --train train.tsv --dev dev.tsv --test test.tsv --out DIR --seed S
    tinytransformer finetune --task tag --train train.conll --dev dev.conll --test test.conll --out DIR --seed S

once with the defaults and once with the other choice of pretraining (``--pretrain-steps``:
from scratch, or pretrained on the task's text; for WNUT-17, whose default is the
bidirectional tagger, the GPT head with each), for seeds 0 .. S-1. Each run's
``results.json`` gives the test score of the saved model and, for an ensemble,
of each member alone. The baselines (bag-of-words logistic regression, the
most-frequent tag) are fitted in the same run on the same splits. Prints a
Markdown table and writes benchmarks/results/finetune.json. The wall time of
each run is measured around the whole command, with the machine's load average
beside it (the machines these figures come from were shared).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinytransformer.baselines import BagOfWordsClassifier, MostFrequentTagTagger
from tinytransformer.data import fetch, load_sst2, load_wnut17
from tinytransformer.data.tasks import WNUT17_FILES
from tinytransformer.metrics import classification_scores, entity_scores
from tinytransformer.training.checkpoint import atomic_write_text

RESULTS = Path(__file__).parent / "results" / "finetune.json"
VARIANTS = {  # the defaults, and the other side of "pretrain, then fine-tune"
    "sst2": {"defaults: from scratch, 10 averaged": [],
             "from scratch, 5 averaged": ["--ensemble", "5"],
             "pretrained 600 steps on the task's text, then fine-tuned, 10 averaged": ["--pretrain-steps", "600"]},
    "wnut17": {"defaults: the tagger that reads both ways (words, characters, shapes, BiLSTM, CRF)": [],
               "a GPT tagging head, pretrained 600 steps on the task's text (--tagger head)": ["--tagger", "head"],
               "a GPT tagging head from scratch": ["--tagger", "head", "--pretrain-steps", "0"]},
}


def write_sst2(folder) -> dict:
    """SST-2's three splits as ``label<TAB>text`` files; returns their paths."""
    paths = {}
    for split in ("train", "dev", "test"):
        texts, labels = load_sst2(split)
        paths[split] = folder / f"sst2-{split}.tsv"
        paths[split].write_text("".join(f"{label}\t{text}\n" for label, text in zip(labels, texts)), encoding="utf-8")
    return paths


def baselines(task) -> dict:
    if task == "sst2":
        model = BagOfWordsClassifier().fit(*load_sst2("train"))
        texts, labels = load_sst2("test")
        acc = classification_scores(labels, model.predict(texts), average="macro")["accuracy"]
        return {"bag of words, logistic regression": {"test": acc}}
    tagger = MostFrequentTagTagger().fit(*load_wnut17("train"))
    sentences, tags = load_wnut17("test")
    return {"most frequent tag": {"test": entity_scores(tags, tagger.predict(sentences))["f1"]}}


def run(task, paths, flags, seed, out) -> dict:
    """One `tinytransformer finetune` run; its results.json plus wall time and load."""
    command = [sys.executable, "-m", "tinytransformer", "finetune", "--task", "classify" if task == "sst2" else "tag",
               "--train", str(paths["train"]), "--dev", str(paths["dev"]), "--test", str(paths["test"]),
               *flags, "--seed", str(seed), "--out", str(out)]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    results = json.loads((out / "results.json").read_text())
    score = "accuracy" if task == "sst2" else "f1"
    members = results.get("members_test", [results["test"]])
    return {"seed": seed, "command": " ".join(["tinytransformer", *command[3:]]), "wall_seconds": round(seconds, 1),
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "test": results["test"][score], "dev": results["dev"][score],
            "members_test": [m[score] for m in members], "phase_seconds": results["seconds"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", nargs="+", default=["sst2", "wnut17"], choices=["sst2", "wnut17"])
    args = parser.parse_args()
    report = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    report["meta"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                      "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for task in args.tasks:
            paths = write_sst2(tmp) if task == "sst2" else {s: fetch(WNUT17_FILES[s]) for s in WNUT17_FILES}
            entry = {"baselines": baselines(task), "runs": {}}
            for name, flags in VARIANTS[task].items():
                entry["runs"][name] = [run(task, paths, flags, seed, tmp / f"{task}-{'-'.join(flags)}-{seed}")
                                       for seed in range(args.seeds)]
                print(f"{task} {name}: done", file=sys.stderr, flush=True)
            report[task] = entry
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(RESULTS, json.dumps(report, indent=1) + "\n")
    print(table(report))
    print(f"wrote {RESULTS}")


def table(report) -> str:
    """The Markdown table of the README's "Fine-tuning" section."""
    lines = ["| task (test metric) | model | test, mean ± sd over seeds | one fine-tuned model alone | minutes per run |",
             "|---|---|---|---|---|"]
    for task, metric in (("sst2", "SST-2 (accuracy)"), ("wnut17", "WNUT-17 (entity F1)")):
        if task not in report:
            continue
        for name, scores in report[task]["baselines"].items():
            lines.append(f"| {metric} | {name} | {100 * scores['test']:.2f} | | |")
        for name, runs in report[task]["runs"].items():
            tests = 100 * np.array([r["test"] for r in runs])
            members = 100 * np.array([m for r in runs for m in r["members_test"]])
            minutes = np.array([r["wall_seconds"] for r in runs]) / 60
            lines.append(f"| {metric} | {name} | {tests.mean():.2f} ± {tests.std():.2f} ({len(runs)} seeds) | "
                         f"{members.mean():.2f} ± {members.std():.2f} ({len(members)} models) | "
                         f"{minutes.mean():.1f} (max {minutes.max():.1f}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
