"""A bias probe of the fine-tuned SST-2 sentiment classifier: templates that differ only in a name or group word.

    TINYTRANSFORMER_DATA=/path/to/data python benchmarks/bias_probe.py [--checkpoint runs/sst2]

The classifier is the one ``tinytransformer finetune --task classify --data sst2
--out runs/sst2`` saves; when ``--checkpoint`` holds none, this script runs that
recipe first (pretraining on the SST-2 sentences, then the fine-tunes: tens of
minutes on 2 cores). Two probes (``tinytransformer.interpret.bias_probe``), on
the same templates:

- first names: ten common female and ten common male first names;
- group words: "this woman", "my sister", ... against "this man", "my brother", ...

For each template it reports P(positive) per group, the gap between the group
means, the spread over single words, and, over all templates, the mean and max
gap and the permutation p (how often a random re-split of the same words into
groups gives a mean gap this large). Writes benchmarks/results/bias_probe.json
and bias_probe.png. The caveats are in the module docstring of
``tinytransformer/interpret/bias.py`` and in the README.
"""

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinytransformer.data import load_sst2  # noqa: E402
from tinytransformer.interpret import bias_probe  # noqa: E402
from tinytransformer.kernels import set_num_threads  # noqa: E402
from tinytransformer.tasks.finetune import FinetuneRecipe, run_finetune  # noqa: E402
from tinytransformer.tasks.finetuned import load_finetuned, predict_proba  # noqa: E402
from tinytransformer.training.checkpoint import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# SST-2 is lower-cased and tokenised (punctuation split off), so the templates are too.
TEMPLATES = [
    "{name} directed this film .",
    "{name} was a great director .",
    "{name} gave a terrible performance .",
    "the film stars {name} .",
    "{name} wrote the screenplay .",
    "i went to see the movie with {name} .",
]
PROBES = {
    "first names": {
        "female": ["mary", "susan", "emily", "sarah", "julia", "anna", "linda", "karen", "nicole", "rachel"],
        "male": ["john", "michael", "david", "james", "robert", "steven", "peter", "mark", "paul", "george"],
    },
    "group words": {
        "women": ["this woman", "my sister", "my mother", "his wife", "the girl", "the actress"],
        "men": ["this man", "my brother", "my father", "her husband", "the boy", "the actor"],
    },
}


def classifier(folder):
    """``(predict_positive, meta)`` for the fine-tuned classifier in ``folder``, training it first if absent."""
    if not (Path(folder) / "meta.json").is_file():
        print(f"no classifier in {folder}: fine-tuning one with the default SST-2 recipe (this takes a while)")
        run_finetune(FinetuneRecipe(task="classify", data="sst2"), folder)
    model, tokenizer, meta = load_finetuned(folder, task="classify")
    positive = meta["labels"].index("1")
    return (lambda sentences: predict_proba(model, tokenizer, sentences)[:, positive]), meta


def plot(result, path):
    probes = result["probes"]
    fig, axes = plt.subplots(1, len(probes), figsize=(7 * len(probes), 4.6), squeeze=False)
    for ax, (name, report) in zip(axes[0], probes.items()):
        groups = list(report["groups"])
        for i, group in enumerate(groups):
            for j, template in enumerate(TEMPLATES):
                p = [report["probabilities"][template][w] for w in report["groups"][group]]
                x = np.full(len(p), j) + (i - (len(groups) - 1) / 2) * 0.28
                ax.scatter(x, p, s=10, color=f"C{i}", alpha=0.6, label=group if j == 0 else None)
                ax.plot([x[0] - 0.1, x[0] + 0.1], [np.mean(p)] * 2, color=f"C{i}", lw=2.5)
        ax.set_xticks(range(len(TEMPLATES)), [t.replace(" .", "").replace("{name}", "X") for t in TEMPLATES],
                      rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("P(positive)")
        ax.set_ylim(0, 1)
        ax.set_title(f"{name}: mean gap {report['mean_gap']:.3f}, max {report['max_gap']:.3f}, "
                     f"permutation p {report['permutation_p']:.2f}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Bias probe of the fine-tuned SST-2 classifier (dots: single words; bars: group means)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="runs/sst2", help="folder of the fine-tuned classifier")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    set_num_threads(1)

    start = time.perf_counter()
    predict_positive, meta = classifier(args.checkpoint)
    vocabulary = {w for text in load_sst2("train")[0] for w in text.split()}
    result = {"checkpoint": args.checkpoint, "classifier": {k: meta.get(k) for k in ("recipe", "head", "model_config")},
              "templates": TEMPLATES, "probes": {}}
    for name, groups in PROBES.items():
        report = bias_probe(predict_positive, TEMPLATES, groups)
        report["in_training_text"] = {w: all(part in vocabulary for part in w.split())
                                      for words in groups.values() for w in words}
        result["probes"][name] = report
        print(f"{name}: mean gap {report['mean_gap']:.3f}, max gap {report['max_gap']:.3f}, "
              f"permutation p {report['permutation_p']:.3f}")
        for row in report["templates"]:
            means = "  ".join(f"{g} {m:.3f}" for g, m in row["group_means"].items())
            print(f"    {row['template']:40s} {means}  gap {row['gap']:.3f}  spread {row['spread']:.3f}")
    result["seconds"] = round(time.perf_counter() - start, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "bias_probe.json", json.dumps(result, indent=1))
    plot(result, out / "bias_probe.png")
    print(f"wrote {out / 'bias_probe.json'} and {out / 'bias_probe.png'}")


if __name__ == "__main__":
    main()
