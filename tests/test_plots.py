"""The figures: each one writes a PNG (or returns a figure); matplotlib is imported only when one is drawn,
and ``tinytransformer.plots`` imports nothing from the layers above it."""

import subprocess
import sys

import numpy as np
import pytest

from tinytransformer.plots import (
    plot_attention_maps, plot_attribution, plot_confusion_matrix, plot_label_efficiency, plot_logit_lens,
    plot_loss_curves, token_labels,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_importing_plots_imports_neither_matplotlib_nor_the_layers_above():
    code = ("import sys, tinytransformer.plots; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' or "
            "m.startswith(('tinytransformer.training', 'tinytransformer.tasks', 'tinytransformer.interpret'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_loss_curves(tmp_path):
    history = {"step": [1, 2, 3], "train_loss": [3.0, 2.5, 2.2], "eval_step": [0, 3], "eval_train_loss": [3.1, 2.2],
               "val_loss": [3.2, 2.4]}
    path = plot_loss_curves(history, tmp_path / "sub" / "loss.png")
    assert path.read_bytes()[:8] == PNG


def test_label_efficiency(tmp_path):
    curves = {"pretrained": {"fractions": [0.05, 0.2, 1.0], "mean": [70.0, 78.0, 83.0], "sd": [1.0, 0.5, 0.4]},
              "from scratch": {"fractions": [0.05, 0.2, 1.0], "mean": [62.0, 71.0, 80.0]}}
    path = plot_label_efficiency(curves, tmp_path / "curve.png", {"bag of words": {"fractions": [0.05, 1.0],
                                                                                  "mean": [60.0, 79.0]}})
    assert path.read_bytes()[:8] == PNG


class Letters:
    def decode(self, ids):
        return " abc\n"[ids[0]]


def test_figures_of_looking_inside(tmp_path):
    rng = np.random.default_rng(0)
    labels = token_labels(Letters(), [1, 0, 4, 2])
    assert labels == ["a", "\u00b7", "\\n", "b"]
    maps = rng.random((2, 3, 4, 4))
    maps /= maps.sum(axis=-1, keepdims=True)
    assert plot_attention_maps(maps, labels, tmp_path / "a.png").read_bytes()[:8] == PNG
    lens = rng.standard_normal((3, 4, 5))  # (n_layer + 1, T, V)
    vocab = token_labels(Letters(), range(5))
    assert plot_logit_lens(lens, labels, vocab, tmp_path / "l.png").read_bytes()[:8] == PNG
    assert plot_logit_lens(lens, labels, vocab, tmp_path / "n.png", next_ids=[0, 4, 2]).read_bytes()[:8] == PNG
    assert plot_attribution(rng.standard_normal(4), labels, tmp_path / "b.png").read_bytes()[:8] == PNG


def test_plot_confusion_matrix(tmp_path):
    import matplotlib.pyplot as plt

    y_true = ["cat", "cat", "dog", "dog", "dog", "eel"]
    y_pred = ["cat", "dog", "dog", "dog", "eel", "cat"]
    fig = plot_confusion_matrix(y_true, y_pred, path=tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["1", "1", "0", "0", "2", "1", "1", "0", "0"]
    assert ax.get_title() == "accuracy 50.0%"
    plt.close(fig)
    fig = plot_confusion_matrix(y_true, y_pred, normalize="true", title="shares")
    assert [t.get_text() for t in fig.axes[0].texts][3:6] == ["0.00", "0.67", "0.33"]
    plt.close(fig)
    with pytest.raises(ValueError, match="normalize must be None or 'true'"):
        plot_confusion_matrix(y_true, y_pred, normalize="all")
