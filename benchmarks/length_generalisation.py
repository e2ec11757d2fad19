"""Length generalisation of positional encodings: train on short numbers, test on longer ones.

    python benchmarks/length_generalisation.py [--max-steps 1000]

The numbers-to-words translator (``tinytransformer translate``'s defaults)
trained on numbers below 100,000 (at most "99,999": 6 source characters, 10
target tokens) and tested on 1,000 numbers from 100,000 to 999,999 (7 source
characters, up to 12 target tokens): every test source and most test targets
are longer than anything seen in training. Once each with sinusoidal, learned
and rotary positions, everything else equal (seed included).

A learned table has never trained the rows of the new positions; sinusoids are
defined everywhere but the model has only seen some of their phases; rotary
positions enter attention only as distances between tokens, most of which did
occur in training. Exact match is also measured on 1,000 numbers below 100,000
(drawn from the training range, so a few may have been trained on) to show
each model learnt the task where it was taught; and on the long numbers, how
often the words after "thousand" are right: the last three digits sit at
distances from the end that training did show.

Writes benchmarks/results/length_generalisation.json and .png and prints the table.
"""

import argparse
import json
import platform
from pathlib import Path

import numpy as np

from tinytransformer.data.translation import sample_numbers
from tinytransformer.kernels import set_num_threads
from tinytransformer.tasks.translation import TranslateConfig, evaluate_translator, train_translator, translate
from tinytransformer.training.checkpoint import atomic_write_text

RESULTS = Path(__file__).parent / "results"
POSITIONALS = ("sinusoidal", "learned", "rotary")


def last_group_match(model, task):
    """How often the words after "thousand" are right: the part of a long number whose positions,
    counted from the end, were all seen in training ("forty-two" in "one hundred thousand forty-two")."""
    sources, references = zip(*(task.texts(n) for n in task.test_numbers))
    predictions = translate(model, task, sources)
    return float(np.mean([r.split("thousand")[-1] == p.split("thousand")[-1] and "thousand" in p
                          for r, p in zip(references, predictions)]))


def run(positional, max_steps, test_size=1000):
    config = TranslateConfig(train_range=(0, 100_000), test_range=(100_000, 1_000_000), test_size=test_size,
                             positional=positional, max_steps=max_steps)
    model, task, history = train_translator(config, progress=False)
    long = evaluate_translator(model, task)
    long["last_group"] = last_group_match(model, task)
    short_numbers = sample_numbers(np.random.default_rng(7), test_size, 0, 100_000)
    short = evaluate_translator(model, task, short_numbers)
    print(f"{positional}: {history['steps']} steps in {history['seconds']:.0f} s, exact match "
          f"{short['exact_match']:.1%} on short numbers, {long['exact_match']:.1%} on long ones (last group right: "
          f"{long['last_group']:.1%})", flush=True)
    return {
        "steps": history["steps"], "seconds": round(history["seconds"], 1), "final_loss": history["loss"][-1],
        "short": {k: short[k] for k in ("exact_match", "bleu", "n")},
        "long": {k: long[k] for k in ("exact_match", "bleu", "last_group", "n")},
        "long_mistakes": long["mistakes"][:5],
    }


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    x = np.arange(len(results))
    bars = (("short", "exact_match", "exact, < 100,000 (trained lengths)"),
            ("long", "exact_match", "exact, 100,000-999,999"),
            ("long", "last_group", "last three digits, 100,000-999,999"))
    for i, (split, metric, label) in enumerate(bars):
        drawn = ax.bar(x + (i - 1) * 0.27, [100 * r[split][metric] for r in results.values()], width=0.27, label=label)
        ax.bar_label(drawn, fmt="%.1f", fontsize=8)
    ax.set_xticks(x, list(results))
    ax.set(ylabel="right (%)", ylim=(0, 135), title="numbers to words, trained on numbers below 100,000")
    ax.legend(loc="upper left", fontsize=8, ncols=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, default=TranslateConfig.max_steps)
    args = parser.parse_args()
    set_num_threads(1)
    results = {p: run(p, args.max_steps) for p in POSITIONALS}
    RESULTS.mkdir(exist_ok=True)
    report = {
        "train_range": [0, 100_000], "test_range": [100_000, 1_000_000], "max_steps": args.max_steps,
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "threads": 1},
        "positionals": results,
    }
    atomic_write_text(RESULTS / "length_generalisation.json", json.dumps(report, indent=1))
    plot(results, RESULTS / "length_generalisation.png")
    print("\n| positions | exact match < 100,000 | exact match 100,000-999,999 | BLEU 100,000-999,999 | "
          "last three digits right |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['short']['exact_match']:.1%} | {r['long']['exact_match']:.1%} | "
              f"{100 * r['long']['bleu']:.1f} | {r['long']['last_group']:.1%} |")


if __name__ == "__main__":
    main()
