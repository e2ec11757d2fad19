"""The loss curve of a training run as a PNG. matplotlib is imported only when a plot is drawn."""

import sys
from pathlib import Path


def import_pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or an ImportError saying how to get it."""
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("plotting needs matplotlib: pip install matplotlib (or tinytransformer[plots])") from err
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # files only: no window, and no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_loss_curves(history, path, title="GPT training"):
    """Draw a history (``Trainer.history``) to ``path``: the loss of every step, faint,
    and the evaluated training and validation losses on top. Returns ``path``."""
    plt = import_pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(history["step"], history["train_loss"], color="tab:blue", alpha=0.25, lw=0.8, label="train (each step)")
    ax.plot(history["eval_step"], history["eval_train_loss"], "o-", color="tab:blue", ms=3, label="train (evaluated)")
    ax.plot(history["eval_step"], history["val_loss"], "o-", color="tab:orange", ms=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
