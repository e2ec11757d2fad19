"""GPT vs LSTM vs RNN: the same corpus, the same number of parameters, the same wall-clock budget.

    TINYTRANSFORMER_DATA=/path/to/data python benchmarks/rnn_vs_gpt.py [--seconds 90] [--data shakespeare]

Three character-level language models of about the same size (GPT: 4 blocks of
width 64; the recurrent models: 2 layers, their width chosen so the parameter
counts match the GPT's) train with the same ``Trainer`` (AdamW, lr 2e-3 after
a 50-step warmup, held constant: a wall-clock race has no known step count for
a cosine to end at), on the same windows of 64 characters, 16 per batch, for
``--seconds`` of training each (CPU time, see below; evaluations not counted). For each model:

- the validation loss on 100 fixed batches at the end, and along the way;
- tokens per second of training;
- the validation loss at each position of the 64-character window: position t
  predicts character t+1 from t+1 characters of context, so the curve shows how
  much each model gains from longer context (long-range dependencies).

Everything runs on one thread (BLAS included), the fastest setting for these
small matrices, and the budget is counted in CPU time of this process
(``time.process_time``): on one thread that is the wall-clock time the run
would take with a core to itself, so a machine shared with other jobs slows
the benchmark down without changing its result. Writes
benchmarks/results/rnn_vs_gpt.json and .png and prints the table.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from tinytransformer.autograd import no_grad
from tinytransformer.data import CharTokenizer, load_corpus, random_windows, train_val_split
from tinytransformer.kernels import set_num_threads
from tinytransformer.models import GPT, RNNLM, GPTConfig, RNNLMConfig
from tinytransformer.rng import manual_seed
from tinytransformer.training import TrainConfig, Trainer
from tinytransformer.training.checkpoint import atomic_write_text

RESULTS = Path(__file__).parent / "results"
BLOCK, BATCH, EVAL_BATCHES, SEED = 64, 16, 100, 1337


def build(kind, vocab_size, target_params=None):
    """A fresh model of ``kind``; the recurrent ones are as wide as brings them closest to ``target_params``."""
    manual_seed(SEED)
    if kind == "gpt":
        return GPT(GPTConfig(vocab_size=vocab_size, block_size=BLOCK, n_layer=4, n_head=4, n_embd=64))

    def count(width):  # embedding, the layers (4 gates for an LSTM), the head
        gates = 4 if kind == "lstm" else 1
        return vocab_size * width + gates * (width * 2 * width + 2 * width) * 2 + width * vocab_size + vocab_size

    width = min(range(8, 1024), key=lambda w: abs(count(w) - target_params))
    model = RNNLM(RNNLMConfig(vocab_size=vocab_size, block_size=BLOCK, cell=kind, n_layer=2, n_embd=width))
    assert model.num_parameters() == count(width)
    return model


def val_batches(val_ids):
    rng = np.random.default_rng([SEED, 2])
    return [random_windows(val_ids, BLOCK, BATCH, rng) for _ in range(EVAL_BATCHES)]


def evaluate(model, batches):
    """(mean validation loss, loss at each window position (T,))."""
    model.eval()
    per_position = np.zeros(BLOCK)
    with no_grad():
        for x, y in batches:
            logits = model(x, y)[0].data.astype(np.float64)  # (B, T, V)
            z = logits - logits.max(axis=-1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (B, T, V)
            nll = -np.take_along_axis(log_p, y[..., None], axis=-1)[..., 0]  # (B, T)
            per_position += nll.mean(axis=0)
    model.train()
    per_position /= len(batches)
    return float(per_position.mean()), per_position


def race(kind, model, train_ids, val_ids, seconds, batches):
    """Train for ``seconds`` of CPU time; evaluate every tenth of it (not counted)."""
    config = TrainConfig(max_iters=10**9, batch_size=BATCH, lr=2e-3, min_lr_ratio=1.0, warmup_iters=50,
                         weight_decay=0.1, grad_clip=1.0, eval_iters=1, seed=SEED)
    trainer = Trainer(model, train_ids, val_ids, config)
    curve = {"seconds": [0.0], "val_loss": [evaluate(model, batches[:20])[0]]}
    spent, next_eval = 0.0, seconds / 10
    while spent < seconds:
        start = time.process_time()
        trainer.train_step()
        spent += time.process_time() - start
        if spent >= next_eval or spent >= seconds:
            curve["seconds"].append(round(spent, 2))
            curve["val_loss"].append(evaluate(model, batches[:20])[0])
            print(f"{kind}: {spent:6.1f} s, step {trainer.step}, val loss {curve['val_loss'][-1]:.4f}", flush=True)
            next_eval += seconds / 10
    val_loss, per_position = evaluate(model, batches)
    return {
        "parameters": model.num_parameters(), "config": model.config.to_dict(), "steps": trainer.step,
        "tokens": trainer.step * trainer.tokens_per_step, "seconds": round(spent, 1),
        "tokens_per_s": trainer.step * trainer.tokens_per_step / spent, "val_loss": val_loss,
        "per_position_loss": per_position.tolist(), "curve": curve,
    }


def plot(results, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    for kind, r in results.items():
        label = f"{kind.upper()} ({r['parameters'] / 1e3:.0f}k params)"
        left.plot(r["curve"]["seconds"], r["curve"]["val_loss"], "o-", ms=3, label=label)
        right.plot(np.arange(1, BLOCK + 1), r["per_position_loss"], label=label)
    left.set(xlabel="training time (CPU seconds, one thread)", ylabel="validation loss (nats/char)",
             title="loss against training time")
    right.set(xlabel="characters of context (position in the window + 1)", ylabel="validation loss (nats/char)",
              title="loss against the distance to the window's start", xscale="log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0, help="training CPU time per model")
    parser.add_argument("--data", default="shakespeare", help="corpus name or path (load_corpus)")
    args = parser.parse_args()
    set_num_threads(1)

    text = load_corpus(args.data)
    tokenizer = CharTokenizer.train(text)
    train_ids, val_ids = train_val_split(np.asarray(tokenizer.encode(text)), 0.1)
    batches = val_batches(val_ids)
    results = {}
    gpt = build("gpt", tokenizer.vocab_size)
    for kind in ("gpt", "lstm", "rnn"):
        model = gpt if kind == "gpt" else build(kind, tokenizer.vocab_size, gpt.num_parameters())
        results[kind] = race(kind, model, train_ids, val_ids, args.seconds, batches)

    RESULTS.mkdir(exist_ok=True)
    report = {
        "data": args.data, "seconds_per_model": args.seconds, "block_size": BLOCK, "batch_size": BATCH,
        "eval_batches": EVAL_BATCHES,
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "threads": 1,
                    "processor": platform.processor() or platform.machine()},
        "models": results,
    }
    atomic_write_text(RESULTS / "rnn_vs_gpt.json", json.dumps(report, indent=1))
    plot(results, RESULTS / "rnn_vs_gpt.png", f"{args.data}, char level: same parameters, {args.seconds:.0f} CPU seconds each")
    print("\n| model | parameters | steps | tokens/s | val loss | loss at 1 / 8 / 64 chars of context |")
    print("|---|---|---|---|---|---|")
    for kind, r in results.items():
        p = r["per_position_loss"]
        print(f"| {kind.upper()} | {r['parameters']:,} | {r['steps']} | {r['tokens_per_s']:,.0f} | "
              f"{r['val_loss']:.3f} | {p[0]:.2f} / {p[7]:.2f} / {p[-1]:.2f} |")


if __name__ == "__main__":
    main()
