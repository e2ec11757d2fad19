"""matplotlib, imported only when a figure is drawn; saving a figure; and what to do when an optional part is missing.

The library runs without matplotlib (it is the optional ``plots`` extra);
importing this module costs nothing, and the first figure imports pyplot on
the file-only Agg backend, so no window and no display are needed.

Every optional dependency (``EXTRAS``: matplotlib, scikit-learn, tqdm, Numba,
threadpoolctl) is imported through ``import_optional``, whose ImportError says
what needed it and the one command that installs it (the hf extra's safetensors
and huggingface_hub are imported by ``models/hf_gpt2.py``, a layer below this
one, with the same message). What a missing extra costs:

- a figure drawn along the way (``loss.png`` of ``train``, the confusion matrices
  of ``finetune``) is skipped, and ``note_once`` says so in one line on standard
  error, with that command;
- a command whose whole job is a figure (``tinytransformer inspect``) stops with
  that ImportError, which the command line prints as one line (exit code 2);
- scikit-learn's macro P/R/F1 are left out of fine-tuning's scores (accuracy
  stays), tqdm's bar becomes a plain line every 2%, Numba's kernels their NumPy
  twins: each said once, in one line.
"""

import importlib
import sys
from pathlib import Path

# module -> (what pip installs, the tinytransformer extra that brings it)
EXTRAS = {
    "matplotlib": ("matplotlib", "plots"),
    "sklearn": ("scikit-learn", "data"),
    "tqdm": ("tqdm", "data"),
    "numba": ("numba", "fast"),
    "threadpoolctl": ("threadpoolctl", "fast"),
    "safetensors": ("safetensors", "hf"),  # imported by models/hf_gpt2.py, which sits below this layer
    "huggingface_hub": ("huggingface_hub", "hf"),
}
_noted = set()


def install_hint(module) -> str:
    """How to install the optional ``module``: "pip install matplotlib (or the plots extra: ...)"."""
    package, extra = EXTRAS[module.split(".")[0]]
    return f"pip install {package} (or the {extra} extra: pip install 'tinytransformer[{extra}]')"


def import_optional(module, needed_for):
    """``import module``, or an ImportError (``.name`` = the missing module) saying that ``needed_for``
    needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        raise ImportError(f"{needed_for} needs {EXTRAS[top][0]}, which is not installed: {install_hint(top)}",
                          name=top) from err


def missing_extra(err):
    """The optional module (a key of ``EXTRAS``) whose absence raised ``err``, or None for any other error."""
    while err is not None:
        name = getattr(err, "name", None)
        if isinstance(err, ImportError) and name and name.split(".")[0] in EXTRAS:
            return name.split(".")[0]
        err = err.__cause__ or err.__context__
    return None


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
