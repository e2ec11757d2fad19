"""What every lesson shares: the short mode CI uses, and where figures go.

Set ``TINYTRANSFORMER_SHORT=1`` to run a lesson in seconds (fewer steps, the
same claims checked); figures are written to ``lessons/figures/`` or to the
folder named by ``TINYTRANSFORMER_FIGURES``.
"""

import os
from pathlib import Path

SHORT = os.environ.get("TINYTRANSFORMER_SHORT", "0") not in ("", "0", "false", "False")


def figure_path(name: str) -> Path:
    """Where to save figure ``name`` (the folder is created if needed)."""
    folder = Path(os.environ.get("TINYTRANSFORMER_FIGURES", Path(__file__).resolve().parent / "figures"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def steps(full: int, short: int) -> int:
    """``full`` normally, ``short`` in CI's short mode."""
    return short if SHORT else full
