"""One seeded random generator for the whole library (like ``torch.manual_seed``).

Weight initialisation, dropout masks and data shuffling all draw from it, so
``tt.manual_seed(0)`` makes a run repeatable, and its state can be saved in a
checkpoint and restored to resume exactly.
"""

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the library's generator; returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def get_rng() -> np.random.Generator:
    """The generator every random op of the library draws from."""
    return _generator


def get_rng_state() -> dict:
    """A JSON-serialisable snapshot of the generator (for checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a snapshot taken by ``get_rng_state``."""
    _generator.bit_generator.state = state
