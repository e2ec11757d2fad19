"""Memorization as models grow and train longer: how often a GPT recites its training text.

    python benchmarks/memorization.py [--train-chars 8192] [--steps 1200]

Four character-level GPTs (about 3k to 200k non-embedding parameters) train
on the same small text, a slice of Python's help pages, for many passes over
it, at a constant learning rate (no weight decay) so that every evaluation along the way is a
fair "model trained this long". At each evaluation the probe
(``tinytransformer.interpret.memorization_rate``) prompts the model with 32
characters of a window and checks whether its greedy continuation of 24
characters is the true one, exactly, on 200 windows of the training text and
200 windows of held-out text of the same kind. Writes
benchmarks/results/memorization.json and memorization.png.
"""

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinytransformer.data import CharTokenizer, load_corpus, train_val_split  # noqa: E402
from tinytransformer.interpret import memorization_rate, non_embedding_parameters  # noqa: E402
from tinytransformer.kernels import set_num_threads  # noqa: E402
from tinytransformer.models.gpt import GPT, GPTConfig  # noqa: E402
from tinytransformer.rng import manual_seed  # noqa: E402
from tinytransformer.training import TrainConfig, Trainer  # noqa: E402
from tinytransformer.training.checkpoint import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SIZES = [(1, 2, 16), (2, 4, 32), (2, 4, 64), (4, 4, 64)]  # (n_layer, n_head, n_embd)


def run(size, args, train_ids, heldout_ids, tokenizer):
    """Train one size, probing memorization at every evaluation; returns its record."""
    n_layer, n_head, n_embd = size
    manual_seed(args.seed)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd))
    config = TrainConfig(max_iters=args.steps, batch_size=16, lr=args.lr, min_lr_ratio=1.0, warmup_iters=50,
                         weight_decay=0.0, eval_interval=args.steps // 8, eval_iters=8, seed=args.seed)
    record = {"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "params": model.num_parameters(),
              "non_embedding_params": non_embedding_parameters(model), "step": [], "epochs": [],
              "train_loss": [], "heldout_loss": [], "train_rate": [], "heldout_rate": [],
              "train_token_match": [], "heldout_token_match": []}

    def probe(trainer, losses):
        on_train = memorization_rate(trainer.model, train_ids, args.prefix, args.suffix, args.windows, seed=1)
        on_heldout = memorization_rate(trainer.model, heldout_ids, args.prefix, args.suffix, args.windows, seed=1)
        record["step"].append(trainer.step)
        record["epochs"].append(trainer.step * trainer.tokens_per_step / len(train_ids))
        record["train_loss"].append(losses["train"])
        record["heldout_loss"].append(losses["val"])
        for name, out in (("train", on_train), ("heldout", on_heldout)):
            record[f"{name}_rate"].append(out["rate"])
            record[f"{name}_token_match"].append(out["token_match"])
        if trainer.step == args.steps:  # a few of the windows it recites, to see what memorized text looks like
            starts = on_train["starts"][on_train["matches"]][:3]
            record["recited"] = [tokenizer.decode(train_ids[s:s + args.prefix + args.suffix]) for s in starts]

    start = time.perf_counter()
    Trainer(model, train_ids, heldout_ids, config).train(progress=False, on_eval=probe)
    record["seconds"] = round(time.perf_counter() - start, 1)
    print(f"  L={n_layer} C={n_embd:3d} N={record['non_embedding_params']:7,d}: train loss "
          f"{record['train_loss'][-1]:.3f}, held-out {record['heldout_loss'][-1]:.3f}; memorized "
          f"{record['train_rate'][-1]:.1%} of training windows, {record['heldout_rate'][-1]:.1%} of held-out "
          f"({record['seconds']:.0f} s)", flush=True)
    return record


def plot(result, path):
    runs = result["runs"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    colors = [plt.cm.viridis(i / (len(runs) - 1)) for i in range(len(runs))]
    for run_, color in zip(runs, colors):
        label = f"N = {run_['non_embedding_params']:,}"
        axes[0].plot(run_["epochs"], run_["train_rate"], "o-", color=color, ms=3, label=f"{label}, training text")
        axes[0].plot(run_["epochs"], run_["heldout_rate"], "x--", color=color, ms=4, label=f"{label}, held-out")
        axes[2].plot(run_["epochs"], run_["train_loss"], "-", color=color, label=f"{label}, training text")
        axes[2].plot(run_["epochs"], run_["heldout_loss"], "--", color=color, label=f"{label}, held-out")
    n = [r["non_embedding_params"] for r in runs]
    axes[1].semilogx(n, [r["train_rate"][-1] for r in runs], "o-", color="tab:red", label="training text")
    axes[1].semilogx(n, [r["heldout_rate"][-1] for r in runs], "x--", color="tab:gray", label="held-out text")
    s = result["settings"]
    axes[0].set_title(f"exact recall of {s['suffix']} chars after a {s['prefix']}-char prompt", fontsize=10)
    axes[0].set_xlabel("passes over the training text (epochs)")
    axes[0].set_ylabel("fraction of windows reproduced exactly")
    axes[1].set_title(f"after {s['steps']} steps", fontsize=10)
    axes[1].set_xlabel("non-embedding parameters N")
    axes[1].set_ylabel("fraction of windows reproduced exactly")
    axes[2].set_title("loss: the training text falls, the held-out text does not", fontsize=10)
    axes[2].set_xlabel("passes over the training text (epochs)")
    axes[2].set_ylabel("loss (nats/char)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(f"Memorization of {s['train_chars']:,} characters of {result['data']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="pydoc", help="corpus for load_corpus")
    parser.add_argument("--train-chars", type=int, default=8192, help="characters of training text")
    parser.add_argument("--steps", type=int, default=1200, help="training steps of 16 x 64 characters")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--prefix", type=int, default=32, help="prompt length in characters")
    parser.add_argument("--suffix", type=int, default=24, help="continuation that must match exactly")
    parser.add_argument("--windows", type=int, default=200, help="windows probed in each text")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    set_num_threads(1)  # small models: one thread is fastest (see benchmarks/scaling.py)

    text = load_corpus(args.data)
    tokenizer = CharTokenizer.train(text)
    train_split, val_split = train_val_split(np.asarray(tokenizer.encode(text)), 0.1)
    train_ids, heldout_ids = train_split[:args.train_chars], val_split[:args.train_chars]
    print(f"{args.data}: {len(train_ids):,} training characters, {len(heldout_ids):,} held-out; "
          f"{args.steps} steps = {args.steps * 16 * 64 / len(train_ids):.0f} passes over the training text")
    start = time.perf_counter()
    runs = [run(size, args, train_ids, heldout_ids, tokenizer) for size in SIZES]
    result = {"data": args.data, "settings": vars(args), "runs": runs, "seconds": round(time.perf_counter() - start)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "memorization.json", json.dumps(result, indent=1))
    plot(result, out / "memorization.png")
    print(f"wrote {out / 'memorization.json'} and {out / 'memorization.png'} in {result['seconds']} s")


if __name__ == "__main__":
    main()
