"""Datasets and batches: PyTorch's ``Dataset``/``DataLoader`` in NumPy, and nanoGPT's random windows.

Two ways to feed a model:

- a ``Dataset`` of examples (``len(ds)``, ``ds[i]``) walked in mini-batches by a
  ``DataLoader``, which stacks the examples' fields into arrays and, with
  ``shuffle=True``, visits them in a new random order every epoch;
- for language modelling on one long token stream, ``random_windows``: a batch
  of ``block_size`` windows at random offsets, each target the input shifted by
  one token, so every position is a next-token prediction.

Shuffling and windows draw from ``tinytransformer.rng.get_rng()`` (seeded by
``tt.manual_seed``) unless given their own seed or generator.
"""

import numpy as np

from ..rng import get_rng
from ..validation import check_value


class Dataset:
    """A collection of examples: subclasses define ``__len__`` and ``__getitem__(index)``."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Examples that are rows of arrays: ``ds[i] == (arrays[0][i], arrays[1][i], ...)``."""

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset: give at least one array")
        self.arrays = tuple(np.asarray(a) for a in arrays)
        lengths = [len(a) if a.ndim else None for a in self.arrays]
        if None in lengths or len(set(lengths)) != 1:
            shapes = [a.shape for a in self.arrays]
            raise ValueError(f"TensorDataset: all arrays need the same first dimension, got shapes {shapes}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)


def default_collate(examples: list):
    """Stack a list of examples into a batch: tuples field by field, dicts key by key, arrays along a new axis 0."""
    first = examples[0]
    if isinstance(first, (tuple, list)):
        return tuple(default_collate([ex[k] for ex in examples]) for k in range(len(first)))
    if isinstance(first, dict):
        return {key: default_collate([ex[key] for ex in examples]) for key in first}
    return np.stack([np.asarray(ex) for ex in examples])  # (B, *example_shape)


class DataLoader:
    """Mini-batches of a Dataset: ``for x, y in DataLoader(ds, batch_size=32, shuffle=True, seed=0)``.

    Each iteration (epoch) visits every example once, in order or, with
    ``shuffle=True``, in a fresh permutation. With ``seed`` the loader owns a
    generator seeded once, so the sequence of epochs is reproducible and each
    epoch still differs; without it, permutations come from ``tt.manual_seed``'s
    generator. ``drop_last=True`` skips a final batch smaller than ``batch_size``.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None, collate_fn=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.collate_fn = collate_fn or default_collate
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self) -> int:
        """The number of batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            order = (self._rng or get_rng()).permutation(n)
        else:
            order = np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = order[start:start + self.batch_size]
            yield self.collate_fn([self.dataset[int(i)] for i in batch])


def random_windows(tokens, block_size: int, batch_size: int, rng=None):
    """``batch_size`` random windows of a token stream: inputs ``x`` and next-token targets ``y``.

    ``x[b] = tokens[i_b : i_b + T]`` and ``y[b] = tokens[i_b + 1 : i_b + T + 1]`` for
    offsets ``i_b`` drawn uniformly from ``[0, len(tokens) - T)`` (nanoGPT's ``get_batch``).
    Returns two int64 arrays of shape ``(batch_size, block_size)``.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"random_windows: tokens must be 1-D, got shape {tokens.shape}")
    block_size = check_value("random_windows: block_size", block_size, int, "[1, inf)")
    batch_size = check_value("random_windows: batch_size", batch_size, int, "[1, inf)")
    if len(tokens) <= block_size:
        raise ValueError(
            f"random_windows: need more than block_size={block_size} tokens (a window plus its next token), "
            f"got {len(tokens)}"
        )
    rng = get_rng() if rng is None else rng
    starts = rng.integers(0, len(tokens) - block_size, size=batch_size)  # (B,)
    index = starts[:, None] + np.arange(block_size)                      # (B, T)
    x = tokens[index].astype(np.int64)                                    # (B, T)
    y = tokens[index + 1].astype(np.int64)                                # (B, T)
    return x, y


def train_val_split(tokens, val_fraction=0.1):
    """Split a token stream into its first ``1 - val_fraction`` (train) and the rest (validation).

    Contiguous, not shuffled: neighbouring windows overlap, so a random split would
    put the same text on both sides.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in [0, 1), got {val_fraction}")
    tokens = np.asarray(tokens)
    n_train = int(round(len(tokens) * (1.0 - val_fraction)))
    return tokens[:n_train], tokens[n_train:]


def train_test_split(*arrays, **options):
    """scikit-learn's ``train_test_split`` (a split of independent examples), imported only when called."""
    try:
        from sklearn.model_selection import train_test_split as sklearn_split
    except ImportError as err:
        raise ImportError(
            "train_test_split needs scikit-learn: pip install scikit-learn (or tinytransformer[data])"
        ) from err
    return sklearn_split(*arrays, **options)
