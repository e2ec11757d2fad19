"""Checkpoints: everything needed to resume a run exactly, stored without pickle, saved without losing anything.

A checkpoint is a folder (docs/checkpoints.md):

    meta.json          what the folder holds (``kind``: a language model, a classifier, a translator, ...),
                       step, config, tokenizer, RNG state, anything else JSON can hold, and the names
                       of the two files below: the only files a later save may remove
    model-<n>.npz      the model's state_dict (names -> arrays)
    optimizer-<n>.npz  the optimizer's arrays (moments, ...), if any

Arrays go to ``.npz`` files read back with ``allow_pickle=False``, so loading a
checkpoint can never run code hidden in it; and nothing read is trusted before
it is checked (``checkpoint_schema`` for meta.json, ``checkpoint_arrays`` for the
arrays), so a damaged or edited folder gives one clear error, not a hang, a
4 GiB allocation or a file read from outside the folder.

A save (``save_checkpoint``) is atomic even over an older checkpoint in the
same folder, and removes only files that saves wrote:

    1. meta.json  += "pending": [model-<n>.npz, optimizer-<n>.npz]    the names about to be written
    2. model-<n>.npz, optimizer-<n>.npz                                each a temporary file, then renamed
    3. meta.json   = the new checkpoint, "superseded": the old files   the commit: one atomic rename
    4. the superseded files are deleted

``os.replace`` is one atomic step on POSIX, so until step 3 readers see the old
meta.json naming the old arrays, and after it the new one naming the new arrays:
a crash (even ``kill -9``) at any moment leaves one complete checkpoint. What a
crash leaves behind is named in meta.json (pending, superseded) or is a
temporary file ``.<name>.unfinished-<random>.tmp``, and the next save of the
folder removes it; nothing else is ever removed: a user's ``model-best.npz``
beside the checkpoint stays.

The commands add one rule before they start (``check_out_folder``): an ``--out``
that already holds a checkpoint, or other files, is used only with ``--overwrite``
(or, for ``train``, ``--resume``).
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .checkpoint_arrays import FLOATS, NUMBERS, array_headers, check_sizes, read_arrays
from .checkpoint_schema import FORMAT_VERSION, check_holds, check_meta, describe, recorded_files, what_it_holds

MAX_META_BYTES = 2**26  # 64 MiB: far above any meta.json the library writes, far below a memory problem
UNFINISHED = ".unfinished-"  # in the name of every temporary file a save writes, and only in those


def atomic_write_bytes(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{UNFINISHED}", suffix=".tmp")
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


def join_arrays(skeleton, arrays, path="the optimizer file"):
    """Inverse of ``split_arrays``; an array the skeleton names but ``arrays`` (read from ``path``) lacks is an error."""
    if isinstance(skeleton, dict):
        if set(skeleton) == {"__array__"}:
            if skeleton["__array__"] not in arrays:
                raise ValueError(f"{path}: has no array {skeleton['__array__']!r}, which meta.json's optimizer names")
            return arrays[skeleton["__array__"]]
        return {k: join_arrays(v, arrays, path) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [join_arrays(v, arrays, path) for v in skeleton]
    return skeleton


def _save_npz(path, arrays):
    for name, array in arrays.items():
        if array.dtype.hasobject:  # np.savez would pickle it, and loading refuses pickles
            raise ValueError(f"save_checkpoint: array {name!r} has dtype object, which cannot be stored without pickle")
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


# ------------------------------------------------------------------ saving
def read_record(path) -> dict:
    """meta.json at ``path`` as a dict, unchecked; a ValueError naming it if it is not a JSON object."""
    size = os.path.getsize(path)
    if size > MAX_META_BYTES:
        raise ValueError(f"{path}: {size:,} bytes, more than any checkpoint's meta.json ({MAX_META_BYTES:,})")
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: must hold a JSON object, got {type(record).__name__}")
    return record


def _previous_record(folder, overwrite) -> dict:
    """The meta.json already in ``folder`` ({} if none), its file names checked: they say what a save may remove."""
    path = folder / "meta.json"
    if not path.exists():
        return {}
    try:
        record = read_record(path)
        recorded_files(record, path)
        if not isinstance(record.get("save_count", 0), int):
            raise ValueError(f"{path}: save_count must be an integer, got {record['save_count']!r}")
    except ValueError as err:
        if overwrite:  # replaced as asked; with no names to trust, no other file is removed
            return {}
        raise ValueError(f"save_checkpoint: {err}; pass overwrite=True (--overwrite) to replace it") from None
    return record


def remove_unfinished(folder):
    """Delete the temporary files that saves interrupted by a crash left in ``folder``."""
    for path in Path(folder).glob(f".*{UNFINISHED}*.tmp"):
        path.unlink(missing_ok=True)


def save_checkpoint(folder, model_state, optimizer_state=None, meta=None, *, overwrite=False) -> dict:
    """Write a checkpoint into ``folder`` (see the module docstring); returns the meta.json record.

    ``meta`` (JSON-able) says what the checkpoint holds: its ``kind`` and that
    kind's keys (``checkpoint_schema.KEYS``); without a kind it is a "custom"
    checkpoint whose keys are the caller's own. The record is checked as a load
    would check it before anything is written. A folder that holds a checkpoint
    of another kind is refused unless ``overwrite``; either way, only files that
    saves wrote (named in the old meta.json) are removed.
    """
    folder = Path(folder)
    previous = _previous_record(folder, overwrite)
    record = {"format_version": FORMAT_VERSION, "kind": "custom", **(meta or {})}
    if "files" in previous and what_it_holds(previous) != what_it_holds(record) and not overwrite:
        raise ValueError(f"save_checkpoint: {folder} holds {describe(previous)}, not {describe(record)}; pass "
                         "overwrite=True (--overwrite) to replace it")
    live, owned = recorded_files(previous, folder / "meta.json")
    n = previous.get("save_count", 0) + 1
    while any(name in live or ((folder / name).exists() and name not in owned) for name in _names(n)):
        n += 1  # never write over a live file, nor over a file no save wrote
    files = {"model": f"model-{n}.npz", **({"optimizer": f"optimizer-{n}.npz"} if optimizer_state is not None else {})}
    record.update(save_count=n, files=files)
    arrays = {}
    if optimizer_state is not None:
        record["optimizer"], arrays = split_arrays(optimizer_state)
    record["superseded"] = sorted(name for name in owned - set(files.values()) if (folder / name).exists())
    check_meta(json.loads(json.dumps(record)), folder / "meta.json")  # never write what a load would refuse

    remove_unfinished(folder)
    journal = previous or {"format_version": FORMAT_VERSION, "kind": record["kind"]}
    journal["pending"] = sorted(set(journal.get("pending", [])) | set(files.values()))
    atomic_write_text(folder / "meta.json", json.dumps(journal, indent=1))  # 1. what is about to be written
    _save_npz(folder / files["model"], {k: np.asarray(v) for k, v in model_state.items()})  # 2.
    if optimizer_state is not None:
        _save_npz(folder / files["optimizer"], arrays)
    atomic_write_text(folder / "meta.json", json.dumps(record, indent=1))  # 3. the commit
    for name in record["superseded"]:  # 4.
        (folder / name).unlink(missing_ok=True)
    return record


def _names(n):
    return f"model-{n}.npz", f"optimizer-{n}.npz"


def check_out_folder(folder, overwrite=False, resumable=False, reads=None):
    """The rule every command applies to its ``--out`` before any work: a folder that does not exist, or
    is empty, is used; one that holds a checkpoint, or files of its own, only with ``--overwrite`` (which
    still removes nothing but the old checkpoint's own files). ``resumable``: the message offers ``--resume``.
    ``reads`` ({flag: folder}) names the folders the run reads: ``--out`` is never one of them, even with
    ``--overwrite``. ``folder`` None (nothing will be written) passes."""
    if folder is None:
        return
    folder = Path(folder)
    for flag, source in (reads or {}).items():
        if source is not None and Path(source).resolve() == folder.resolve():
            raise ValueError(f"--out {folder} is also {flag}, the folder this run reads from; a run never writes "
                             "into the folder it reads: choose another --out")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {folder} is a file, not a folder")
    if overwrite or not folder.exists():
        return
    meta = folder / "meta.json"
    if meta.exists():
        try:
            record = read_record(meta)
        except ValueError as err:
            raise ValueError(f"--out {folder} holds a meta.json that is not a checkpoint ({err}); give --overwrite "
                             "to replace it, or choose another --out") from None
        if "files" not in record and "pending" in record:
            return  # the first save of an earlier run was interrupted: nothing to lose
        step = f" at step {record['step']}" if isinstance(record.get("step"), int) else ""
        resume = "continue it with --resume, " if resumable else ""
        raise ValueError(f"--out {folder} already holds {describe(record)}{step}; {resume}give --overwrite to replace "
                         "it, or choose another --out")
    others = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise ValueError(f"--out {folder} holds files but no checkpoint ({shown}); choose a new or empty folder, or "
                         "give --overwrite to write beside them")


# ----------------------------------------------------------------- loading
def load_meta(folder, holds=None, reader="load_meta", wants=None) -> dict:
    """Read ``meta.json`` of a checkpoint folder, checked (``checkpoint_schema.check_meta``); no arrays are read.

    ``holds``, if given, lists what the caller reads (names of ``checkpoint_schema.HOLDS``:
    "gpt", "classifier", ...); a folder holding something else is a ValueError saying what
    it holds and which command reads it. ``reader`` names the caller in that message, ``wants``
    what it reads (default: the nouns of ``holds``).
    """
    folder = Path(folder)
    path = folder / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a checkpoint (no meta.json); pass the folder that "
                                "`tinytransformer train --out DIR` (or finetune, translate --train) wrote")
    meta = read_record(path)
    check_meta(meta, path)
    if holds is not None:
        check_holds(meta, folder, holds, reader, wants)
    return meta


def load_checkpoint(folder, holds=None, reader="load_checkpoint", wants=None):
    """Read a checkpoint folder: returns ``(model_state, optimizer_state or None, meta)``.

    meta.json is checked first (``load_meta``, with ``holds``, ``reader``, ``wants``),
    then the headers of the arrays, then the model config against the arrays
    (``checkpoint_arrays.check_sizes``); only then are the arrays read.
    """
    folder = Path(folder)
    meta = load_meta(folder, holds, reader, wants)
    files = meta.pop("files")
    for key in ("superseded", "pending"):
        meta.pop(key, None)
    model_path = folder / files["model"]
    headers = array_headers(model_path, FLOATS if meta["kind"] != "custom" else NUMBERS)
    check_sizes(meta, headers, folder / "meta.json", model_path)
    model_state = read_arrays(model_path)
    optimizer_state = None
    if "optimizer" in meta:
        optimizer_path = folder / files["optimizer"]
        array_headers(optimizer_path)
        optimizer_state = join_arrays(meta.pop("optimizer"), read_arrays(optimizer_path), optimizer_path)
    return model_state, optimizer_state, meta
