"""Batches of examples of different lengths: padding, length-bucketed batches, the epoch source the loop draws from."""

import numpy as np

from tinytransformer.data.batching import EpochBatches, length_batches, pad


def test_length_batches_cover_every_example_once_and_group_lengths():
    lengths = np.random.default_rng(0).integers(1, 50, 1000)
    for rng in (None, np.random.default_rng(1)):
        batches = length_batches(lengths, 32, rng)
        assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
        spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
        assert spread < 3  # a random batch of 32 would spread over ~45
    assert [len(b) for b in length_batches(lengths, 300)] == [300, 300, 300, 100]


def test_pad_right_pads_and_masks():
    idx, mask = pad([[5, 6, 7], [8]], fill=-1)
    np.testing.assert_array_equal(idx, [[5, 6, 7], [8, -1, -1]])
    np.testing.assert_array_equal(mask, [[False, False, False], [False, True, True]])


def test_epoch_batches_hand_out_each_epoch_once_in_either_order():
    lengths = np.random.default_rng(0).integers(1, 20, 100)
    for from_end in (False, True):
        source = EpochBatches(lengths, 16, lambda batch: list(batch), from_end=from_end)
        assert source.batches_per_epoch == 7
        rng, expected = np.random.default_rng(3), length_batches(lengths, 16, np.random.default_rng(3))
        epoch = [source.next_batch(rng) for _ in range(source.batches_per_epoch)]
        assert [list(b) for b in epoch] == [list(b) for b in (expected[::-1] if from_end else expected)]
        assert source.queue == []  # the next call starts a fresh shuffle
