"""Checkpoints: everything needed to resume a run exactly, stored without pickle.

A checkpoint is a folder:

    meta.json          step, config, tokenizer, RNG state, optimizer hyper-parameters,
                       anything else JSON can hold, and the names of the two files below
    model-<n>.npz      the model's state_dict (names -> arrays)
    optimizer-<n>.npz  the optimizer's arrays (moments, ...), if any

Arrays go to ``.npz`` files read back with ``allow_pickle=False``, so loading a
checkpoint can never run code hidden in it.

Saving is atomic even over an older checkpoint in the same folder: the arrays
are written under new names (``<n>`` counts the saves), then ``meta.json`` is
written to a temporary file and renamed over the old one (``os.replace``, one
atomic step on POSIX). That rename is the commit: until it happens, readers see
the old ``meta.json`` naming the old arrays, and after it the new one naming the
new arrays; a crash at any moment leaves one complete checkpoint. The files of
the previous save are deleted only after the commit.
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1


def atomic_write_bytes(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def split_arrays(obj, prefix=""):
    """Separate the arrays of a nested dict/list from the rest.

    Returns ``(skeleton, arrays)``: ``arrays`` maps a path such as
    ``state.3.exp_avg`` to each ndarray, and ``skeleton`` is ``obj`` with every
    array replaced by ``{"__array__": path}`` so it can be stored as JSON.
    """
    arrays = {}

    def walk(x, path):
        if isinstance(x, np.ndarray):
            arrays[path] = x
            return {"__array__": path}
        if isinstance(x, dict):
            return {str(k): walk(v, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(x)]
        if isinstance(x, np.generic):
            return x.item()
        return x

    return walk(obj, prefix), arrays


def join_arrays(skeleton, arrays):
    """Inverse of ``split_arrays``."""
    if isinstance(skeleton, dict):
        if set(skeleton) == {"__array__"}:
            return arrays[skeleton["__array__"]]
        return {k: join_arrays(v, arrays) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [join_arrays(v, arrays) for v in skeleton]
    return skeleton


def _save_npz(path, arrays):
    for name, array in arrays.items():
        if array.dtype.hasobject:  # np.savez would pickle it, and loading refuses pickles
            raise ValueError(f"save_checkpoint: array {name!r} has dtype object, which cannot be stored without pickle")
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def _load_npz(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def save_checkpoint(folder, model_state, optimizer_state=None, meta=None):
    """Write a checkpoint folder (see the module docstring). ``meta`` must be JSON-able."""
    folder = Path(folder)
    previous = load_meta(folder) if (folder / "meta.json").is_file() else {}
    n = previous.get("save_count", 0) + 1
    record = {"format_version": FORMAT_VERSION, **(meta or {}), "save_count": n, "files": {}}
    record["files"]["model"] = f"model-{n}.npz"
    _save_npz(folder / record["files"]["model"], {k: np.asarray(v) for k, v in model_state.items()})
    if optimizer_state is not None:
        skeleton, arrays = split_arrays(optimizer_state)
        record["files"]["optimizer"] = f"optimizer-{n}.npz"
        _save_npz(folder / record["files"]["optimizer"], arrays)
        record["optimizer"] = skeleton
    atomic_write_text(folder / "meta.json", json.dumps(record, indent=1))  # the commit
    for stale in [*folder.glob("model-*.npz"), *folder.glob("optimizer-*.npz")]:
        if stale.name not in record["files"].values():
            stale.unlink()


def load_meta(folder):
    """Read only ``meta.json`` of a checkpoint folder (cheap: no arrays)."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"load_checkpoint: {folder} is not a checkpoint (no meta.json); "
            "pass the folder that `tinytransformer train --out DIR` wrote"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"load_checkpoint: {folder} has format version {meta.get('format_version')}, expected {FORMAT_VERSION}"
        )
    return meta


def load_checkpoint(folder):
    """Read a checkpoint folder: returns ``(model_state, optimizer_state or None, meta)``."""
    folder = Path(folder)
    meta = load_meta(folder)
    files = meta.pop("files")
    model_state = _load_npz(folder / files["model"])
    optimizer_state = None
    if "optimizer" in meta:
        optimizer_state = join_arrays(meta.pop("optimizer"), _load_npz(folder / files["optimizer"]))
    return model_state, optimizer_state, meta
