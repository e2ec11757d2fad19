"""Tuning the bidirectional tagger on WNUT-17's dev set: one setting changed at a time from a starting point.

    TINYTRANSFORMER_DATA=/path/to/data OPENBLAS_NUM_THREADS=1 python benchmarks/tagger_tuning.py [--only NAME ...]

Each row trains ``TaggingConfig(data="wnut17", **START, **change, seed=s)``
(tasks/tagging.py, what ``tinytransformer finetune --task tag --data wnut17``
runs) for the row's seeds and reports the dev entity F1 of its best epoch, the
one the command keeps, with that epoch and the minutes a run took. The last row,
"defaults", is ``TaggingConfig``'s own defaults: START with the change that
measured best. The test set is never read here: the defaults are chosen on dev,
and scored on test once (``finetune_report.py``). Writes
benchmarks/results/tagger_tuning.json (rows of earlier runs are kept, so
``--only`` reruns a few) and prints a Markdown table.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from tinytransformer.data import load_task
from tinytransformer.rng import manual_seed
from tinytransformer.tasks.tagging import TaggerVocab, TaggingConfig, build_tagger, train_tagger
from tinytransformer.training.checkpoint import atomic_write_text

RESULTS = Path(__file__).parent / "results" / "tagger_tuning.json"
START = {"lower": True, "min_freq": 1, "unk_replace": 0.5, "word_dim": 50, "word_init": 0.1, "char_dim": 30,
         "char_filters": 50, "hidden_size": 100, "dropout": 0.5, "output": "crf", "epochs": 20, "batch_size": 32,
         "lr": 3e-3, "weight_decay": 0.0}
SETTINGS = {  # name -> (the change from START, or None for TaggingConfig's defaults; seeds)
    "starting point (lr=3e-3)": ({}, [0, 1, 2]),
    "softmax per word instead of the CRF": ({"output": "softmax"}, [0]),
    "words keep their case (lower=False)": ({"lower": False}, [0]),
    "word embedding initialised N(0, 1) (word_init=1)": ({"word_init": 1.0}, [0]),
    "no `<unk>` in training (unk_replace=0)": ({"unk_replace": 0.0}, [0]),
    "word_dim=100": ({"word_dim": 100}, [0]),
    "char_filters=25": ({"char_filters": 25}, [0]),
    "char_filters=100": ({"char_filters": 100}, [0]),
    "hidden_size=50": ({"hidden_size": 50}, [0]),
    "hidden_size=200": ({"hidden_size": 200}, [0]),
    "batch_size=16": ({"batch_size": 16}, [0]),
    "epochs=12": ({"epochs": 12}, [0]),
    "epochs=30": ({"epochs": 30}, [0]),
    "lr=1e-3": ({"lr": 1e-3}, [0]),
    "lr=1e-2": ({"lr": 1e-2}, [0, 1]),
    "lr=6e-3, weight_decay=0.01": ({"lr": 6e-3, "weight_decay": 0.01}, [0]),
    "lr=6e-3, epochs=15": ({"lr": 6e-3, "epochs": 15}, [0]),
    "dropout=0.3": ({"dropout": 0.3}, [0, 1, 2]),
    "lr=6e-3, dropout=0.3": ({"lr": 6e-3, "dropout": 0.3}, [0, 1, 2]),
    "defaults: the starting point with lr=6e-3": (None, [0, 1, 2]),
}


def one_run(change, seed, data) -> dict:
    config = TaggingConfig(data="wnut17", seed=seed, **({} if change is None else {**START, **change}))
    vocab = TaggerVocab.train(data.train[0], data.labels, config.min_freq, config.lower)
    manual_seed(config.seed)
    model = build_tagger(config, vocab)
    start = time.perf_counter()
    history = train_tagger(model, vocab, data, config, log=lambda _: None)
    return {"seed": seed, "dev": history["best_dev"]["f1"], "best_epoch": history["best_epoch"],
            "dev_per_epoch": [round(d["f1"], 4) for d in history["dev"]],
            "minutes": round((time.perf_counter() - start) / 60, 2), "load_average": round(os.getloadavg()[0], 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), metavar="NAME", help="these rows only")
    args = parser.parse_args()
    report = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    data = load_task("wnut17")
    data.test = None  # never looked at while tuning
    for name in args.only or SETTINGS:
        change, seeds = SETTINGS[name]
        report[name] = {"change": change, "runs": [one_run(change, seed, data) for seed in seeds]}
        print(f"{name}: {[round(100 * r['dev'], 2) for r in report[name]['runs']]}", file=sys.stderr, flush=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RESULTS, json.dumps({k: report[k] for k in SETTINGS if k in report}, indent=1) + "\n")
    print(table(report))
    print(f"wrote {RESULTS}")


def table(report) -> str:
    """Markdown: per row the mean (± sd over seeds) dev F1 of the best epoch, the mean over the last 5 epochs
    (how high the curve stays, less noisy than its best point), the best epochs and the minutes per run."""
    lines = ["| setting (the starting point, one change) | dev entity F1, best epoch | dev F1, last 5 epochs | seeds | best epoch "
             "| minutes per run |", "|---|---|---|---|---|---|"]
    for name, entry in ((k, report[k]) for k in SETTINGS if k in report):
        runs = entry["runs"]
        dev = 100 * np.array([r["dev"] for r in runs])
        late = 100 * np.mean([np.mean(r["dev_per_epoch"][-5:]) for r in runs])
        spread = f" ± {dev.std():.1f}" if len(dev) > 1 else ""
        lines.append(f"| {name} | {dev.mean():.1f}{spread} | {late:.1f} | {len(dev)} | "
                     f"{', '.join(str(r['best_epoch']) for r in runs)} | {np.mean([r['minutes'] for r in runs]):.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
