"""matplotlib, imported only when a figure is drawn, and saving a figure to a file.

The library runs without matplotlib (it is the optional ``plots`` extra);
importing this module costs nothing, and the first figure imports pyplot on
the file-only Agg backend, so no window and no display are needed.
"""

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


def save_figure(fig, path, dpi=110):
    """Write ``fig`` to ``path`` (folders made as needed), close it, and return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    import_pyplot().close(fig)
    return path
