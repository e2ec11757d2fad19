"""Every figure the library draws, one module per family; matplotlib is imported only when one is drawn.

    backend.py    import_pyplot (the file-only Agg backend), save_figure; import_optional, note_once
                  (an optional extra missing: its error or its one-line note, with how to install it)
    training.py   plot_loss_curves (a run's history), plot_confusion_matrix (a classifier's mistakes),
                  plot_label_efficiency (score against the share of labels used)
    inside.py     plot_attention_maps, plot_logit_lens, plot_attribution (``tinytransformer inspect``),
                  token_labels for their axes

The functions take arrays and histories, not models: computing what to draw is
the job of ``training``, ``interpret`` and ``tasks``, which import this package, never the
reverse.
"""

from .backend import import_optional, import_pyplot, install_hint, missing_extra, note_once, save_figure
from .inside import plot_attention_maps, plot_attribution, plot_logit_lens, token_labels
from .training import plot_confusion_matrix, plot_label_efficiency, plot_loss_curves

__all__ = [
    "import_optional", "import_pyplot", "install_hint", "missing_extra", "note_once", "plot_attention_maps",
    "plot_attribution", "plot_confusion_matrix", "plot_label_efficiency", "plot_logit_lens", "plot_loss_curves",
    "save_figure", "token_labels",
]
