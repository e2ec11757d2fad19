"""Batches for the training loop: padding, length-bucketed batches, and the batch sources the loop draws from.

The training loop (``tinytransformer.training.Trainer``) asks its data for one
batch at a time, ``source.next_batch(rng)``, with the loop's own seeded
generator. Two sources cover every task in the library:

    TokenWindows(tokens, block_size, batch_size)   language modelling: random windows of one long stream,
                                                   each target the input shifted by one token (nanoGPT)
    EpochBatches(lengths, batch_size, collate)     examples of different lengths (sentences): every epoch
                                                   a new shuffle, batches of similar lengths, padded by
                                                   ``pad`` to their own longest row

Anything with a ``next_batch(rng)`` method is a source too (the translation
task draws fresh number pairs that way).
"""

import numpy as np

from .datasets import random_windows


def pad(seqs, fill=0) -> tuple:
    """``(array, key_padding_mask)``: the sequences right-padded with ``fill`` to the longest, (B, T) each.

    The mask follows PyTorch's ``key_padding_mask``: True marks padding.
    """
    T = max(len(s) for s in seqs)
    out = np.full((len(seqs), T), fill, dtype=np.int64)  # (B, T)
    mask = np.ones((len(seqs), T), dtype=bool)            # (B, T), True = padding
    for row, s in enumerate(seqs):
        out[row, :len(s)] = s
        mask[row, :len(s)] = False
    return out, mask


def length_batches(lengths, batch_size, rng=None) -> list:
    """Lists of example indices, each of similar lengths so that padding stays small.

    Without ``rng``: in order of length (for evaluation). With it: shuffled,
    sorted by length within pools of 50 batches, and the batches shuffled, so
    each epoch sees new company for every example. An epoch has
    ``ceil(len(lengths) / batch_size)`` batches either way.
    """
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order, pool = rng.permutation(len(lengths)), 50 * batch_size
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class TokenWindows:
    """A language-modelling source: ``batch_size`` random windows of ``block_size`` tokens per batch.

    ``next_batch(rng)`` returns ``(x, y)``, two (B, T) int64 arrays, ``y`` = ``x`` shifted by one.
    """

    def __init__(self, tokens, block_size, batch_size):
        self.tokens = np.asarray(tokens)
        self.block_size, self.batch_size = block_size, batch_size

    def __len__(self):
        return len(self.tokens)

    @property
    def tokens_per_batch(self) -> int:
        return self.batch_size * self.block_size

    def next_batch(self, rng):
        return random_windows(self.tokens, self.block_size, self.batch_size, rng)  # (B, T), (B, T)


class EpochBatches:
    """Examples of different lengths, in batches of similar lengths; a fresh shuffle every epoch.

    ``collate(indices)`` turns a batch of example indices into what the loss
    function takes (usually padded arrays, see ``pad``). ``from_end=True`` hands
    out an epoch's batches last first (the order task pretraining has always
    used; the same batches either way).
    """

    def __init__(self, lengths, batch_size, collate, from_end=False):
        self.lengths, self.batch_size, self.collate, self.from_end = list(lengths), batch_size, collate, from_end
        self.queue = []

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def next_batch(self, rng):
        if not self.queue:
            self.queue = length_batches(self.lengths, self.batch_size, rng)
            if not self.from_end:
                self.queue.reverse()
        return self.collate(self.queue.pop())
