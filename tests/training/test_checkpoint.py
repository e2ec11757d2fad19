"""Checkpoint folders: round trip without pickle, and atomic replacement of an older checkpoint."""

import json

import numpy as np
import pytest

from tinytransformer.training import checkpoint
from tinytransformer.training.checkpoint import load_checkpoint, load_meta, save_checkpoint


def _states(rng):
    model_state = {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": np.arange(4, dtype=np.float64)}
    optimizer_state = {
        "state": {0: {"step": 3, "exp_avg": rng.normal(size=(3, 4)).astype(np.float32)}},
        "param_groups": [{"lr": 0.1 / 3, "betas": (0.9, 0.99), "params": [0]}],
    }
    return model_state, optimizer_state


def test_round_trip_keeps_arrays_dtypes_and_meta(tmp_path, rng):
    model_state, optimizer_state = _states(rng)
    big = np.random.default_rng(5).bit_generator.state  # 128-bit integers must survive JSON
    save_checkpoint(tmp_path, model_state, optimizer_state, {"step": 7, "rng": big, "note": "héllo"})
    loaded_model, loaded_opt, meta = load_checkpoint(tmp_path)
    assert set(loaded_model) == {"w", "b"}
    for k in model_state:
        assert loaded_model[k].dtype == model_state[k].dtype
        np.testing.assert_array_equal(loaded_model[k], model_state[k])
    saved = loaded_opt["state"]["0"]
    assert saved["step"] == 3
    np.testing.assert_array_equal(saved["exp_avg"], optimizer_state["state"][0]["exp_avg"])
    assert loaded_opt["param_groups"][0]["lr"] == 0.1 / 3  # floats round-trip exactly through JSON
    assert meta["step"] == 7 and meta["rng"] == big and meta["note"] == "héllo"
    for npz in tmp_path.glob("*.npz"):  # every array file loads with pickles refused
        np.load(npz, allow_pickle=False)


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(ValueError, match="dtype object"):
        save_checkpoint(tmp_path, {"w": np.array([{"a": 1}], dtype=object)})


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_a_second_save_replaces_the_first_and_removes_only_its_own_files(tmp_path, rng):
    model_state, optimizer_state = _states(rng)
    save_checkpoint(tmp_path, model_state, optimizer_state, {"step": 1})
    for name in ("model-99.npz", "model-2.npz", "model-best.npz", "notes.txt"):  # the user's, not a save's
        (tmp_path / name).write_bytes(b"mine")
    (tmp_path / ".model-7.npz.unfinished-abc123.tmp").write_bytes(b"left by a killed save")
    save_checkpoint(tmp_path, {k: v + 1 for k, v in model_state.items()}, optimizer_state, {"step": 2})
    loaded, _, meta = load_checkpoint(tmp_path)
    assert meta["step"] == 2
    np.testing.assert_array_equal(loaded["w"], model_state["w"] + 1)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["meta.json", "model-2.npz", "model-3.npz", "model-99.npz", "model-best.npz", "notes.txt",
                     "optimizer-3.npz"]  # model-2.npz was the user's: the save took the next free number
    assert all((tmp_path / n).read_bytes() == b"mine" for n in ("model-99.npz", "model-2.npz", "model-best.npz"))


def test_a_crash_before_the_commit_leaves_the_old_checkpoint(tmp_path, rng, monkeypatch):
    model_state, optimizer_state = _states(rng)
    save_checkpoint(tmp_path, model_state, optimizer_state, {"step": 1})

    def crash(path, text):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "atomic_write_text", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, {k: v * 0 for k, v in model_state.items()}, optimizer_state, {"step": 2})
    monkeypatch.undo()
    loaded, loaded_opt, meta = load_checkpoint(tmp_path)
    assert meta["step"] == 1
    np.testing.assert_array_equal(loaded["w"], model_state["w"])
    assert json.loads((tmp_path / "meta.json").read_text())["files"]["model"] == "model-1.npz"
    assert load_meta(tmp_path)["step"] == 1
