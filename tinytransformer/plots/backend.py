"""matplotlib, imported only when a figure is drawn; saving a figure; and what to do when an optional part is missing.

The library runs without matplotlib (it is the optional ``plots`` extra);
importing this module costs nothing, and the first figure imports pyplot on
the file-only Agg backend, so no window and no display are needed.

Every optional dependency is imported through ``import_optional`` (``extras.py``,
at the bottom of the layout, re-exported here), whose ImportError says what
needed it and the one command that installs it. What a missing extra costs:

- a figure drawn along the way (``loss.png`` of ``train``, the confusion matrices
  of ``finetune``) is skipped, and ``note_once`` says so in one line on standard
  error, with that command;
- a command whose whole job is a figure (``tinytransformer inspect``) stops with
  that ImportError, which the command line prints as one line (exit code 2);
- scikit-learn's macro P/R/F1 are left out of fine-tuning's scores (accuracy
  stays), tqdm's bar becomes a plain line every 2%, Numba's kernels their NumPy
  twins: each said once, in one line.
"""

import sys
from pathlib import Path

from ..extras import EXTRAS, import_optional, install_hint, missing_extra  # noqa: F401  (re-exported)

_noted = set()


def note_once(message, write=None):
    """Print ``note: message`` on standard error (or pass it to ``write``), once per process: a figure
    skipped at every evaluation is said once."""
    if message not in _noted:
        _noted.add(message)
        (write or (lambda text: print(text, file=sys.stderr, flush=True)))(f"note: {message}")


def import_pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or an ImportError saying how to get it."""
    matplotlib = import_optional("matplotlib", "plotting")
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # files only: no window, and no display needed
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi=110):
    """Write ``fig`` to ``path`` (folders made as needed), close it, and return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    import_pyplot().close(fig)
    return path
