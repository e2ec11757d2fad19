"""The figures of training and evaluation: the loss curves of a run, and a classifier's confusion matrix."""

import numpy as np

from ..metrics import accuracy, confusion_matrix
from .backend import import_optional, import_pyplot, save_figure


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
    return save_figure(fig, path)


def plot_confusion_matrix(y_true, y_pred, labels=None, normalize=None, title=None, path=None):
    """A matplotlib figure of the confusion matrix (rows: truth, columns: prediction); saved to ``path`` if given.

    ``normalize="true"`` shows each row as shares of its class (the recall of
    each class on the diagonal); ``None`` shows counts. The figure is returned
    open, to be shown or drawn on, so pyplot keeps whatever backend the caller
    chose (a notebook's, say) instead of ``import_pyplot``'s file-only one.
    """
    plt = import_optional("matplotlib.pyplot", "a confusion matrix")
    ConfusionMatrixDisplay = import_optional("sklearn.metrics", "a confusion matrix").ConfusionMatrixDisplay

    y_true, y_pred = list(y_true), list(y_pred)
    if labels is None:
        labels = sorted(set(y_true) | set(y_pred), key=str)
    matrix = confusion_matrix(y_true, y_pred, labels=labels).astype(float)  # (n_classes, n_classes)
    if normalize == "true":
        matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    elif normalize is not None:
        raise ValueError(f"plot_confusion_matrix: normalize must be None or 'true', got {normalize!r}")
    size = 2.5 + 0.5 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(matrix, display_labels=labels).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format=".2f" if normalize else ".0f")
    ax.set_title(title or f"accuracy {accuracy(y_true, y_pred):.1%}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_label_efficiency(curves, path, baselines=None, title="accuracy against labelled examples",
                          ylabel="test accuracy (%)"):
    """What pretraining buys: one line per way of training, score against the share of the labels used.

    ``curves``: name -> {"fractions": [...], "mean": [...], "sd": [...] or None}; ``baselines``:
    name -> {"fractions": [...], "mean": [...]}, drawn dashed (a bag of words, say). The x axis is
    logarithmic: each step from 5% to 20% to 100% of the labels is a fixed factor. Returns ``path``.
    """
    plt = import_pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for name, curve in curves.items():
        sd = curve.get("sd")
        ax.errorbar(100 * np.asarray(curve["fractions"]), curve["mean"], yerr=sd, fmt="o-", ms=4, capsize=3,
                    label=name)
    for name, line in (baselines or {}).items():
        ax.plot(100 * np.asarray(line["fractions"]), line["mean"], "s--", color="grey", ms=4, label=name)
    ax.set_xscale("log")
    fractions = sorted({f for c in (*curves.values(), *(baselines or {}).values()) for f in c["fractions"]})
    ax.set_xticks([100 * f for f in fractions], [f"{100 * f:g}%" for f in fractions])
    ax.set_xlabel("share of the training labels used")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
