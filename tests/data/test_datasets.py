"""Dataset/DataLoader batching and seeded shuffling; random LM windows; splits."""

import numpy as np
import pytest

import tinytransformer as tt
from tinytransformer.data import (
    DataLoader, Dataset, TensorDataset, random_windows, train_test_split, train_val_split,
)


def make_dataset(n=10):
    return TensorDataset(np.arange(n * 3, dtype=np.float32).reshape(n, 3), np.arange(n))


def test_tensor_dataset_items():
    ds = make_dataset()
    assert len(ds) == 10
    x, y = ds[4]
    np.testing.assert_array_equal(x, [12, 13, 14])
    assert y == 4
    with pytest.raises(ValueError, match=r"same first dimension, got shapes \[\(3,\), \(4,\)\]"):
        TensorDataset(np.zeros(3), np.zeros(4))


def test_loader_batches_in_order():
    batches = list(DataLoader(make_dataset(), batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    assert batches[0][0].dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.arange(10))
    assert len(DataLoader(make_dataset(), batch_size=4)) == 3


def test_loader_drop_last():
    loader = DataLoader(make_dataset(), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [b[1].shape for b in loader] == [(4,), (4,)]


def test_loader_seeded_shuffle_is_reproducible_and_changes_each_epoch():
    def epochs(seed):
        loader = DataLoader(make_dataset(), batch_size=3, shuffle=True, seed=seed)
        return [np.concatenate([y for _, y in loader]) for _ in range(3)]

    first, again, other = epochs(0), epochs(0), epochs(1)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    for order in first:
        np.testing.assert_array_equal(np.sort(order), np.arange(10))  # each example once per epoch
    assert not np.array_equal(first[0], first[1])
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_loader_shuffle_follows_manual_seed():
    def one_epoch():
        tt.manual_seed(123)
        return np.concatenate([y for _, y in DataLoader(make_dataset(), batch_size=4, shuffle=True)])

    np.testing.assert_array_equal(one_epoch(), one_epoch())
    assert not np.array_equal(one_epoch(), np.arange(10))


def test_loader_collates_custom_dataset_and_dicts():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"x": np.full(2, i), "y": i * i}

    (batch,) = list(DataLoader(Squares(), batch_size=5))
    np.testing.assert_array_equal(batch["x"][:, 0], np.arange(5))
    np.testing.assert_array_equal(batch["y"], [0, 1, 4, 9, 16])
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        DataLoader(Squares(), batch_size=0)


def test_random_windows_shift_by_one():
    tokens = np.arange(1000) * 7 % 101
    x, y = random_windows(tokens, block_size=16, batch_size=8, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    # every row is a window of the stream, and y continues it by one token
    stream = np.arange(1000)
    xs, ys = random_windows(stream, block_size=16, batch_size=64, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(xs, xs[:, :1] + np.arange(16))
    np.testing.assert_array_equal(ys, xs + 1)
    assert xs.min() >= 0 and ys.max() <= 999


def test_random_windows_reach_the_last_token_and_are_seeded():
    stream = np.arange(11)
    x, y = random_windows(stream, block_size=10, batch_size=4, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(y[0], np.arange(1, 11))  # only one window fits
    a = random_windows(stream, 3, 5, rng=np.random.default_rng(7))
    b = random_windows(stream, 3, 5, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="need more than block_size=10 tokens"):
        random_windows(np.arange(10), block_size=10, batch_size=1)


def test_train_val_split_is_contiguous():
    train, val = train_val_split(np.arange(100), val_fraction=0.1)
    np.testing.assert_array_equal(train, np.arange(90))
    np.testing.assert_array_equal(val, np.arange(90, 100))
    with pytest.raises(ValueError, match="val_fraction must be in"):
        train_val_split(np.arange(10), val_fraction=1.0)


def test_train_test_split_is_sklearns():
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    assert x_train.shape == (7, 2) and x_test.shape == (3, 2)
    np.testing.assert_array_equal(x_train[:, 0] // 2, y_train)
    np.testing.assert_array_equal(np.sort(np.concatenate([y_train, y_test])), np.arange(10))
