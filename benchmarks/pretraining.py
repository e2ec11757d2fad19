"""What pretraining buys: SST-2 with 5%, 20% and 100% of its labels, from scratch and from bodies pretrained on
movie reviews; WNUT-17 up the tagger's ladder. Writes benchmarks/results/pretraining.json and pretraining.png.

    TINYTRANSFORMER_DATA=/path/to/data python benchmarks/pretraining.py --bert runs/bert --gpt runs/gpt-reviews \\
        [--seeds 3] [--fractions 0.05 0.2 1] [--jobs 2] [--only sst2|wnut17]

The two bodies are pretrained once, by the commands a user runs (this script runs them when a folder holds
no checkpoint; about 25 and 20 minutes on one core):

    tinytransformer train --model bert --data movie_reviews --out runs/bert
    tinytransformer train --model gpt --data movie_reviews --tokenizer word --n-layer 4 --n-head 4 --n-embd 128 \\
        --block-size 64 --batch-size 16 --max-iters 2000 --eval-interval 250 --out runs/gpt-reviews

SST-2. For each seed s and share f of the training labels, the f * 6,920 training sentences drawn by seed s
(the dev and test sets whole), every model comes from `tinytransformer finetune --task classify` on those
files, as a user runs it, with ``--seed s --ensemble 1`` and ``--epochs`` scaled to 3 / f, so that every share
gets about the same number of steps, at most 20 epochs (the dev set picks the best epoch):

    from scratch, the default model    no --checkpoint: the fine-tuning defaults' one-block GPT on the task's words
    from scratch, the encoder          --checkpoint of the BERT below with random weights (the same tokenizer,
                                       size and recipe as the pretrained one; step 0 of `train --model bert`)
    GPT pretrained on the reviews      --checkpoint runs/gpt-reviews
    BERT pretrained on the reviews     --checkpoint runs/bert

beside a bag of words (logistic regression on word counts) fitted on the same sentences. The test set is
scored once per model. WNUT-17 (``--only wnut17``): the bidirectional tagger (tasks/tagging.py) with its
inputs and output switched on one at a time, from words read both ways with a softmax per word to the
default (words, characters, shapes, CRF), then with a pretrained BERT's state of each word as one more input
(``extra``: the body frozen, its states computed once); the causal GPT head of `finetune --task tag
--tagger head` and the most frequent tag per word beside them.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tinytransformer.baselines import BagOfWordsClassifier
from tinytransformer.data import load_sst2
from tinytransformer.metrics import accuracy
from tinytransformer.plots import plot_label_efficiency
from tinytransformer.tasks.language_model import LanguageModelConfig, prepare_pretraining
from tinytransformer.training.checkpoint import atomic_write_text

RESULTS = Path(__file__).parent / "results" / "pretraining.json"
GPT_COMMAND = ["--model", "gpt", "--data", "movie_reviews", "--tokenizer", "word", "--n-layer", "4", "--n-head", "4",
               "--n-embd", "128", "--block-size", "64", "--batch-size", "16", "--max-iters", "2000",
               "--eval-interval", "250"]
MAX_EPOCHS = 20  # 5% of the labels: 20 epochs of 11 steps, a third of the steps of 3 epochs of them all
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def cli(*args, out=None):
    """Run ``tinytransformer ARGS`` on one thread; returns its wall seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tinytransformer", *args], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, **ONE_THREAD})
    return time.perf_counter() - start


def pretrained_bodies(bert, gpt, scratch) -> dict:
    """The bodies' folders, each pretrained first when it holds no checkpoint, and the random encoder."""
    for folder, args in ((bert, ["--model", "bert", "--data", "movie_reviews"]), (gpt, GPT_COMMAND)):
        if not (Path(folder) / "meta.json").is_file():
            print(f"pretraining {folder}: tinytransformer train {' '.join(args)}", file=sys.stderr, flush=True)
            cli("train", *args, "--out", str(folder))
    if not (Path(scratch) / "meta.json").is_file():  # step 0 of the BERT run: its tokenizer, random weights
        prepare_pretraining(config=LanguageModelConfig(model="bert", data="movie_reviews")).save(scratch)
    wordvec = Path(str(scratch) + "-wordvec")
    if not (wordvec / "meta.json").is_file():
        word_vector_body(wordvec)
    return {"bert": Path(bert), "gpt": Path(gpt), "scratch": Path(scratch), "wordvec": wordvec}


def word_vector_body(folder, dim=128, window=4):
    """The random encoder with its word embedding replaced by word vectors of the reviews: positive pointwise
    mutual information of words within ``window`` of each other (weight 1/distance; the context counts raised to
    0.75, as word2vec's negative sampling does), factorised by a truncated SVD to ``dim`` columns (Levy, Goldberg
    & Dagan 2015), U sqrt(S), scaled to the embedding's initial spread. Needs scipy (the sklearn extra brings it).
    About 30 s on one core."""
    import scipy.sparse as sparse
    from scipy.sparse.linalg import svds

    from tinytransformer.data import load_corpus

    trainer = prepare_pretraining(config=LanguageModelConfig(model="bert", data="movie_reviews"))
    tok, V = trainer.tokenizer, trainer.tokenizer.vocab_size
    lines = [np.array(tok.encode_words(line.split())) for line in load_corpus("movie_reviews").splitlines()
             if line.strip()]
    pairs = [(s[:-d], s[d:], np.full(len(s) - d, 1.0 / d)) for d in range(1, window + 1) for s in lines if len(s) > d]
    a, b, w = (np.concatenate(part) for part in zip(*pairs))
    counts = sparse.coo_matrix((np.concatenate([w, w]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                               shape=(V, V)).tocsr().tocoo()  # (V, V), symmetric, duplicates summed
    total, word = counts.sum(), np.asarray(counts.sum(axis=1)).ravel()
    context = word ** 0.75 / (word ** 0.75).sum()
    pmi = np.log(counts.data / total) - np.log(word[counts.row] / total) - np.log(context[counts.col])
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), shape=(V, V))
    U, S, _ = svds(ppmi, k=dim)
    vectors = U * np.sqrt(S)  # (V, dim)
    embedding = trainer.model.bert.embeddings.word_embeddings.weight
    embedding.data[...] = vectors / vectors.std() * embedding.data.std()
    embedding.data[tok.pad_id] = 0.0
    trainer.save(folder)
    return Path(folder)


def curve(folder) -> dict:
    """A pretraining run's evaluated losses, from its checkpoint's history."""
    meta = json.loads((Path(folder) / "meta.json").read_text())
    history = meta["history"]
    return {"model_type": meta["model_type"], "step": history["eval_step"], "val_loss": history["val_loss"],
            "train_loss": history["eval_train_loss"], "tokens_per_step": meta["train_config"]["batch_size"]
            * meta["model_config"]["block_size"]}


# ----------------------------------------------------------------- SST-2
# The recipe of each body, chosen on SST-2's dev set with all the labels (seed 0; docs/pretraining.md): a GPT reads
# the sentence at its last position (the only one that has seen all of it) and its body learns at 3e-4; an
# encoder, pretrained or not, learns at the head's rate, 1e-3, and pools by the mean.
GPT_RECIPE, ENCODER_RECIPE = ["--pooling", "last", "--body-lr", "3e-4"], ["--body-lr", "1e-3"]


def sst2_variants(bodies) -> dict:
    return {"from scratch, the default model": [],
            "from scratch, the encoder": ["--checkpoint", str(bodies["scratch"]), *ENCODER_RECIPE],
            "the encoder from scratch, word vectors of the reviews": ["--checkpoint", str(bodies["wordvec"]),
                                                                      *ENCODER_RECIPE],
            "GPT pretrained on the reviews": ["--checkpoint", str(bodies["gpt"]), *GPT_RECIPE],
            "BERT pretrained on the reviews": ["--checkpoint", str(bodies["bert"]), *ENCODER_RECIPE]}


def label_subset(n, fraction, seed) -> np.ndarray:
    """The indices of ``round(fraction * n)`` training examples drawn by ``seed`` (all of them at 1)."""
    return np.sort(np.random.default_rng(seed).permutation(n)[:max(2, round(fraction * n))])


def write_tsv(path, texts, labels):
    path.write_text("".join(f"{label}\t{text}\n" for label, text in zip(labels, texts)), encoding="utf-8")
    return path


def finetune_run(flags, files, fraction, seed, out) -> dict:
    epochs = min(math.ceil(3 / fraction), MAX_EPOCHS)
    args = ["finetune", "--task", "classify", "--train", str(files["train"]), "--dev", str(files["dev"]),
            "--test", str(files["test"]), *flags, "--ensemble", "1", "--epochs", str(epochs), "--seed", str(seed),
            "--out", str(out)]
    load = os.getloadavg()[0]
    seconds = cli(*args)
    results = json.loads((out / "results.json").read_text())
    return {"fraction": fraction, "seed": seed, "test": results["test"]["accuracy"], "dev": results["dev"]["accuracy"],
            "wall_seconds": round(seconds, 1), "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
            "command": "tinytransformer " + " ".join(args)}


def sst2(bodies, fractions, seeds, jobs, tmp, only=None, report=None) -> dict:
    """The SST-2 runs of the variants named in ``only`` (default: all), added to ``report``'s."""
    train, dev, test = load_sst2("train"), load_sst2("dev"), load_sst2("test")
    shared = {"dev": write_tsv(tmp / "dev.tsv", *dev), "test": write_tsv(tmp / "test.tsv", *test)}
    variants = {name: flags for name, flags in sst2_variants(bodies).items() if only is None or name in only}
    report = report or {"runs": {}}
    report["bag of words"] = []
    report["runs"].update({name: [] for name in variants})
    work = []
    for fraction in fractions:
        for seed in seeds:
            rows = label_subset(len(train[0]), fraction, seed)
            texts, labels = [train[0][i] for i in rows], [train[1][i] for i in rows]
            files = {**shared, "train": write_tsv(tmp / f"train-{fraction}-{seed}.tsv", texts, labels)}
            bow = BagOfWordsClassifier().fit(texts, labels)
            report["bag of words"].append({"fraction": fraction, "seed": seed,
                                           "test": accuracy(test[1], bow.predict(test[0]))})
            for name, flags in variants.items():
                work.append((name, flags, files, fraction, seed, tmp / f"{len(work)}"))
    with ThreadPoolExecutor(jobs) as pool:
        done = pool.map(lambda w: (w[0], finetune_run(*w[1:])), work)
        for name, run in done:
            report["runs"][name].append(run)
            print(f"sst2 {name} {run['fraction']:g} seed {run['seed']}: test {100 * run['test']:.2f}",
                  file=sys.stderr, flush=True)
    return report


def summary(runs, fractions) -> dict:
    """fraction -> (mean %, sd %, n) of the test scores."""
    out = {}
    for fraction in fractions:
        scores = 100 * np.array([r["test"] for r in runs if r["fraction"] == fraction])
        out[fraction] = (float(scores.mean()), float(scores.std()), len(scores))
    return out


def sst2_table(report, fractions) -> str:
    lines = ["| SST-2 test accuracy (%) | " + " | ".join(f"{100 * f:g}% of the labels" for f in fractions) + " |",
             "|---|" + "---|" * len(fractions)]
    rows = {"bag of words (logistic regression)": report["bag of words"], **report["runs"]}
    for name, runs in rows.items():
        cells = summary(runs, fractions)
        lines.append(f"| {name} | " + " | ".join(f"{m:.2f} ± {s:.2f} ({n})" for m, s, n in cells.values()) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------- WNUT-17
def encoder_states(body, tokenizer):
    """``extra(sentences) -> (B, T, C)``: a frozen encoder's state of each word of each sentence, the words
    lower-cased and looked up whole in its word vocabulary, inside ``<cls> ... <eos>``."""
    from tinytransformer.autograd import no_grad
    from tinytransformer.data.batching import pad

    def extra(sentences):
        ids = [[tokenizer.cls_id, *tokenizer.encode_words([w.lower() for w in s]), tokenizer.eos_id]
               for s in sentences]
        idx, mask = pad(ids)  # (B, T + 2)
        with no_grad():
            h = body.hidden_states(idx[:, :body.config.block_size], mask[:, :body.config.block_size]).data
        T = max(len(s) for s in sentences)
        out = np.zeros((len(sentences), T, h.shape[-1]), dtype=np.float32)  # words past the block: zeros
        n = min(T, h.shape[1] - 1)
        out[:, :n] = h[:, 1:n + 1]
        return out
    return extra


def tagger_ladder(bert_folder, seeds) -> dict:
    """Dev and test entity F1 of the bidirectional tagger, one input or output added per rung."""
    from dataclasses import replace

    from tinytransformer.data import load_task
    from tinytransformer.models.tagger import BiTagger
    from tinytransformer.rng import manual_seed
    from tinytransformer.tasks.tagging import TaggerVocab, TaggingConfig, evaluate, train_tagger
    from tinytransformer.tasks.language_model import load_pretrained

    data = load_task("wnut17")
    body, tokenizer, _ = load_pretrained(bert_folder, reader="benchmarks/pretraining.py", holds=("bert",))
    body.eval()
    with_states = encoder_states(body, tokenizer)

    class WithEncoder(TaggerVocab):  # every batch also carries the frozen encoder's word states
        def batch(self, sentences, tags=None):
            batch = super().batch(sentences, tags)
            batch.extra = with_states(sentences)
            return batch

    rungs = {  # name -> (changes to the tagger's config, whether it reads the encoder)
        "words read both ways (BiLSTM), a softmax per word": ({"char_vocab_size": 0, "shapes": False,
                                                               "output": "softmax"}, False),
        "+ characters and shapes": ({"output": "softmax"}, False),
        "+ a CRF (the default of finetune --task tag)": ({}, False),
        "+ the pretrained BERT's word states (frozen)": ({"extra_dim": body.config.n_embd}, True),
    }
    report = {}
    for name, (change, reads_encoder) in rungs.items():
        report[name] = []
        for seed in seeds:
            config = TaggingConfig(data="wnut17", seed=seed)
            base = TaggerVocab.train(data.train[0], data.labels, config.min_freq, config.lower)
            vocab = WithEncoder(base.tokenizer, base.char_vocab, base.labels) if reads_encoder else base
            manual_seed(seed)
            model = BiTagger(replace(config.model_config(vocab), **change))
            model.embedding.weight.data *= config.word_init
            start = time.perf_counter()
            history = train_tagger(model, vocab, data, config, log=lambda _: None)
            report[name].append({"seed": seed, "dev": history["best_dev"]["f1"],
                                 "test": evaluate(model, vocab, *data.test)["f1"],
                                 "minutes": round((time.perf_counter() - start) / 60, 2)})
            print(f"wnut17 {name} seed {seed}: test {100 * report[name][-1]['test']:.2f}", file=sys.stderr, flush=True)
    return report


# ----------------------------------------------------------------- the figure and the run
def plot(report, fractions, path):
    curves = {name: {"fractions": fractions, "mean": [m for m, _, _ in summary(runs, fractions).values()],
                     "sd": [s for _, s, _ in summary(runs, fractions).values()]}
              for name, runs in report["sst2"]["runs"].items()}
    bow = {"bag of words": {"fractions": fractions,
                            "mean": [m for m, _, _ in summary(report["sst2"]["bag of words"], fractions).values()]}}
    return plot_label_efficiency(curves, path, bow, title="SST-2: what pretraining on movie reviews buys")


def plot_pretraining(curves, path):
    """The two pretraining runs' validation losses against training tokens read."""
    from tinytransformer.plots import import_pyplot, save_figure

    plt = import_pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels = {"bert": "BERT, masked words (15% of the tokens predicted)", "gpt": "GPT, the next word (every token)"}
    for name, c in curves.items():
        ax.plot(np.array(c["step"]) * c["tokens_per_step"] / 1e6, c["val_loss"], "o-", ms=3, label=labels[name])
    ax.set_xlabel("training tokens read (millions)")
    ax.set_ylabel("validation loss (nats per predicted word)")
    ax.set_ylim(4.5, 8)
    ax.set_title("pretraining on the movie reviews (16,384-word vocabulary)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bert", default="runs/bert", help="the BERT pretrained on the reviews (trained if absent)")
    parser.add_argument("--gpt", default="runs/gpt-reviews", help="the GPT pretrained on them (trained if absent)")
    parser.add_argument("--scratch", default="runs/bert-step0", help="where the random encoder is kept")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.2, 1.0])
    parser.add_argument("--jobs", type=int, default=2, help="fine-tuning runs at once, one thread each")
    parser.add_argument("--only", choices=["sst2", "wnut17"])
    parser.add_argument("--variants", nargs="+", help="SST-2: only these (by name), kept beside earlier runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON file (the figure beside it)")
    args = parser.parse_args()
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    bodies = pretrained_bodies(args.bert, args.gpt, args.scratch)
    report["pretraining"] = {name: curve(bodies[name]) for name in ("bert", "gpt")}
    report["meta"] = {"cpus": os.cpu_count(), "threads per run": 1, "jobs": args.jobs,
                      "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    seeds = list(range(args.seeds))
    if args.only in (None, "sst2"):
        with tempfile.TemporaryDirectory() as tmp:
            report["sst2"] = sst2(bodies, args.fractions, seeds, args.jobs, Path(tmp), args.variants,
                                  report.get("sst2") if args.variants else None)
        report["sst2"]["fractions"] = args.fractions
    if args.only in (None, "wnut17"):
        report["wnut17"] = tagger_ladder(bodies["bert"], seeds)
    report["meta"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    if "sst2" in report:
        print(sst2_table(report["sst2"], report["sst2"]["fractions"]))
        print(f"wrote {plot(report, report['sst2']['fractions'], args.out.with_suffix('.png'))}")
    print(f"wrote {plot_pretraining(report['pretraining'], args.out.with_name(args.out.stem + '_loss.png'))}")
    for name, runs in report.get("wnut17", {}).items():
        test = 100 * np.array([r["test"] for r in runs])
        print(f"| WNUT-17 | {name} | {test.mean():.2f} ± {test.std():.2f} ({len(test)}) |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
