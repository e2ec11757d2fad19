"""Scaling laws in miniature: validation loss against parameters, data and compute, with power-law fits.

    make scaling                                           # or:
    python benchmarks/scaling.py [--data pydoc|shakespeare] [--steps 200]

Two sweeps of character-level GPTs on one corpus (Python's help pages by
default), every run with AdamW, warmup + cosine to lr/10, the same batches:

- size: seven models from 1 layer of width 16 to 4 layers of width 96 (130x in
  non-embedding parameters N, 80x in all parameters), each trained on the same
  token budget D (400 steps of 16 x 64 characters, about one pass over the text);
- data: the middle model trained on budgets from D/8 to 2D, each with its own
  full schedule.

Every run's validation loss is also recorded during training, against the
compute spent so far, C = 6 N D_seen, so the third panel shows the curves and
their lower envelope, the compute-efficient frontier. Fits: L(N) and L(D) as
a N^-alpha (and with an offset, a N^-alpha + c), L(C) on the frontier.
Writes benchmarks/results/scaling.json and scaling.png.

The exponents of models this small, trained this briefly, are not Kaplan's
(alpha_N ~ 0.076 for billions of parameters on web text): the fits describe
these runs, and the point is the method.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FormatStrFormatter  # noqa: E402
import numpy as np  # noqa: E402

from tinytransformer.data import CharTokenizer, load_corpus, train_val_split  # noqa: E402
from tinytransformer.interpret import fit_power_law, non_embedding_parameters, training_flops  # noqa: E402
from tinytransformer.kernels import set_num_threads  # noqa: E402
from tinytransformer.models.gpt import GPT, GPTConfig  # noqa: E402
from tinytransformer.rng import manual_seed  # noqa: E402
from tinytransformer.training import TrainConfig, Trainer  # noqa: E402
from tinytransformer.training.checkpoint import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SIZES = [  # (n_layer, n_head, n_embd): non-embedding parameters ~ 12 n_layer n_embd^2
    (1, 2, 16), (1, 2, 24), (2, 4, 32), (2, 4, 48), (3, 4, 64), (4, 4, 64), (4, 4, 96),
]
DATA_MODEL = (2, 4, 32)
DATA_FRACTIONS = (0.125, 0.25, 0.5, 1.0, 2.0)


def train_one(size, steps, args, train_ids, val_ids, vocab_size):
    """Train one GPT of ``size`` for ``steps``; returns its record (sizes, tokens, compute, losses)."""
    n_layer, n_head, n_embd = size
    manual_seed(args.seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=args.block_size, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd))
    config = TrainConfig(max_iters=steps, batch_size=args.batch_size, lr=args.lr, warmup_iters=max(1, steps // 10),
                         eval_interval=max(1, steps // 8), eval_iters=args.eval_iters, seed=args.seed)
    trainer = Trainer(model, train_ids, val_ids, config)
    start = time.perf_counter()
    history = trainer.train(progress=False)
    seconds = time.perf_counter() - start
    n = non_embedding_parameters(model)
    tokens_seen = [s * trainer.tokens_per_step for s in history["eval_step"]]
    record = {
        "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "params": model.num_parameters(),
        "non_embedding_params": n, "steps": steps, "tokens": steps * trainer.tokens_per_step,
        "flops": training_flops(n, steps * trainer.tokens_per_step), "val_loss": history["val_loss"][-1],
        "train_loss": history["eval_train_loss"][-1], "seconds": round(seconds, 1),
        "curve": {"tokens": tokens_seen, "flops": [training_flops(n, d) for d in tokens_seen],
                  "val_loss": history["val_loss"]},
    }
    print(f"  L={n_layer} C={n_embd:3d}  N={n:7,d}  D={record['tokens']:9,d}  val loss {record['val_loss']:.4f}  "
          f"({seconds:.0f} s)", flush=True)
    return record


def frontier(runs):
    """The compute-efficient frontier: the points (C, L) of all curves that no smaller C beats.

    Each run's first quarter is left out: there the loss is still falling
    through the warmup transient, which no choice of size would avoid.
    """
    points = sorted((c, loss) for run in runs for c, loss in zip(run["curve"]["flops"], run["curve"]["val_loss"])
                    if c >= run["flops"] / 4)
    best, keep = np.inf, []
    for c, loss in points:
        if loss < best:
            best = loss
            keep.append((c, loss))
    return np.array(keep)  # (k, 2)


def fits(x, y):
    pure, shifted = fit_power_law(x, y), fit_power_law(x, y, offset=True)
    return {"power_law": pure.to_dict(), "with_offset": shifted.to_dict()}


def plot(result, path):
    size_runs, data_runs = result["size_sweep"], result["data_sweep"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    panels = [
        (axes[0], size_runs, "non_embedding_params", result["fits"]["size"], "non-embedding parameters N",
         f"L(N), D = {size_runs[0]['tokens']:,} tokens each", "N"),
        (axes[1], data_runs, "tokens", result["fits"]["data"], "training tokens D",
         f"L(D), N = {data_runs[0]['non_embedding_params']:,}", "D"),
    ]
    for ax, runs, key, fit, xlabel, title, symbol in panels:
        x = np.array([r[key] for r in runs], dtype=float)
        y = np.array([r["val_loss"] for r in runs])
        ax.loglog(x, y, "o", color="tab:blue", label="runs")
        grid = np.logspace(np.log10(x.min()) - 0.1, np.log10(x.max()) + 0.1, 50)
        pure, shifted = fit["power_law"], fit["with_offset"]
        ax.loglog(grid, pure["a"] * grid ** -pure["alpha"], "--", color="tab:red",
                  label=f"{pure['a']:.2f} {symbol}^-{pure['alpha']:.3f}")
        ax.loglog(grid, shifted["a"] * grid ** -shifted["alpha"] + shifted["c"], ":", color="tab:green",
                  label=f"{shifted['a']:.2f} {symbol}^-{shifted['alpha']:.3f} + {shifted['c']:.2f}")
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
    ax = axes[2]
    for i, run in enumerate(size_runs):
        c, loss = np.array(run["curve"]["flops"]), np.array(run["curve"]["val_loss"])
        ax.loglog(c[c > 0], loss[c > 0], "-", color=plt.cm.viridis(i / (len(size_runs) - 1)), alpha=0.8,
                  label=f"N = {run['non_embedding_params']:,}")
    for i, run in enumerate(data_runs):
        c, loss = np.array(run["curve"]["flops"]), np.array(run["curve"]["val_loss"])
        ax.loglog(c[c > 0], loss[c > 0], ":", color="gray", lw=1,
                  label=f"data sweep, N = {run['non_embedding_params']:,}" if i == 0 else None)
    edge = np.array(result["frontier"])
    fit = result["fits"]["compute"]["power_law"]
    ax.loglog(edge[:, 0], edge[:, 1], "k.", ms=5, label="frontier (each run's last 3/4)")
    ax.loglog(edge[:, 0], fit["a"] * edge[:, 0] ** -fit["alpha"], "--", color="tab:red",
              label=f"frontier {fit['a']:.2f} C^-{fit['alpha']:.3f}")
    ax.set_xlabel("training compute C = 6 N D (FLOPs)")
    ax.set_title("L(C): every run during training", fontsize=10)
    for ax in axes:
        ax.set_ylabel("validation loss (nats/char)")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))  # plain numbers on the log axis
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"Scaling of a character-level GPT on {result['data']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def finish(result, out):
    """Add the frontier and the fits to ``result``, write the JSON and the figure to ``out``, print the exponents."""
    size_runs, data_runs = result["size_sweep"], result["data_sweep"]
    edge = frontier(size_runs + data_runs)
    result["frontier"] = edge.tolist()
    result["fits"] = {
        "size": fits([r["non_embedding_params"] for r in size_runs], [r["val_loss"] for r in size_runs]),
        "data": fits([r["tokens"] for r in data_runs], [r["val_loss"] for r in data_runs]),
        "compute": fits(edge[:, 0], edge[:, 1]),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "scaling.json", json.dumps(result, indent=1))
    plot(result, out / "scaling.png")
    for name, fit in result["fits"].items():
        pure, shifted = fit["power_law"], fit["with_offset"]
        print(f"L({name}): alpha = {pure['alpha']:.4f} (R^2 {pure['r2']:.3f}); with an offset: alpha = "
              f"{shifted['alpha']:.4f}, c = {shifted['c']:.3f}")
    print(f"wrote {out / 'scaling.json'} and {out / 'scaling.png'} in {result['seconds']:.0f} s")



def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="pydoc", help="corpus for load_corpus: pydoc, shakespeare or a path")
    parser.add_argument("--steps", type=int, default=400, help="steps of the size sweep (its token budget)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--eval-iters", type=int, default=10, help="batches per validation loss")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS and Numba threads; for models this small one thread is fastest, and on a "
                        "busy 2-core machine several threads spinning against each other were 10x slower")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--out", default=str(RESULTS), help="folder for scaling.json and scaling.png")
    parser.add_argument("--refit", action="store_true",
                        help="train nothing: read --out/scaling.json again, refit and redraw (after changing a fit)")
    args = parser.parse_args()
    if args.refit:
        return finish(json.loads((Path(args.out) / "scaling.json").read_text()), Path(args.out))
    set_num_threads(args.threads)

    text = load_corpus(args.data)
    tokenizer = CharTokenizer.train(text)
    train_ids, val_ids = train_val_split(np.asarray(tokenizer.encode(text)), 0.1)
    print(f"{args.data}: {len(train_ids):,} training / {len(val_ids):,} validation characters, "
          f"vocabulary {tokenizer.vocab_size}")
    start = time.perf_counter()
    print(f"size sweep: {len(SIZES)} models, {args.steps} steps each")
    size_runs = [train_one(size, args.steps, args, train_ids, val_ids, tokenizer.vocab_size) for size in SIZES]
    print(f"data sweep: {DATA_MODEL}, {DATA_FRACTIONS} x {args.steps} steps")
    data_runs = [train_one(DATA_MODEL, max(1, round(f * args.steps)), args, train_ids, val_ids, tokenizer.vocab_size)
                 for f in DATA_FRACTIONS]
    result = {
        "data": args.data, "settings": vars(args), "machine": platform.machine(), "python": platform.python_version(),
        "size_sweep": size_runs, "data_sweep": data_runs, "seconds": round(time.perf_counter() - start, 1),
    }
    finish(result, Path(args.out))


if __name__ == "__main__":
    main()
