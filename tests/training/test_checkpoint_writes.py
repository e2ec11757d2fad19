"""Writes that cannot destroy: a save removes only files that saves wrote, a crash (a real ``kill -9``) at any
moment leaves the previous checkpoint loadable and the next save leaves no stray file, and every command
refuses an ``--out`` that holds another run or other files unless told (``--resume``, ``--overwrite``)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinytransformer.cli import main
from tinytransformer.training import check_out_folder, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY_TRAIN = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
              "--eval-iters", "1", "--max-iters", "1", "--eval-interval", "1"]
TINY_TRANSLATE = ["--max-steps", "1", "--test-size", "4", "--d-model", "8", "--batch-size", "4", "--max-number", "99",
                  "--num-layers", "1"]


def _names(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def _save(folder, step, **kwargs):
    w = np.zeros((8, 4), np.float32)
    return save_checkpoint(folder, {"w": w + step}, {"state": {"m": w - step}}, {"step": step}, **kwargs)


def _checkpoint_files(folder):
    meta = json.loads((Path(folder) / "meta.json").read_text())
    return sorted(["meta.json", *meta["files"].values()])


# ------------------------------------------------------------ save_checkpoint
def test_a_tampered_meta_json_cannot_make_a_save_remove_a_file_outside(tmp_path):
    folder, victim = tmp_path / "run", tmp_path / "victim.npz"
    victim.write_bytes(b"precious")
    _save(folder, 1)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "superseded": ["../victim.npz"]}))
    with pytest.raises(ValueError, match=r"superseded\[0\].*overwrite"):
        _save(folder, 2)
    _save(folder, 2, overwrite=True)  # replaced as asked; with no name to trust, nothing else is removed
    assert victim.read_bytes() == b"precious"
    assert load_checkpoint(folder)[2]["step"] == 2 and "model-1.npz" in _names(folder)


def test_a_checkpoint_of_another_kind_is_replaced_only_with_overwrite(tmp_path):
    from tinytransformer.data import CharTokenizer
    from tinytransformer.models.gpt import GPT, GPTConfig
    from tinytransformer.tasks.translation import TranslateConfig, load_translator, save_translator
    from tinytransformer.training import TrainConfig, Trainer

    chars = CharTokenizer.train("abcd ")
    ids = np.array(chars.encode("abcd " * 20))
    gpt = GPT(GPTConfig(vocab_size=chars.vocab_size, block_size=4, n_layer=1, n_head=1, n_embd=4))
    Trainer(gpt, ids, ids, TrainConfig(max_iters=1, batch_size=2), tokenizer=chars).save(tmp_path)
    (tmp_path / "loss.png").write_bytes(b"the GPT's plot")
    (tmp_path / "model-best.npz").write_bytes(b"the user's own")
    gpt_files = _checkpoint_files(tmp_path)
    config = TranslateConfig(train_range=(0, 100), test_size=4, d_model=8, num_layers=1, dim_feedforward=8)
    task = config.task()
    from tinytransformer.models.seq2seq import Seq2SeqTransformer

    translator = Seq2SeqTransformer(config.model_config(task))
    with pytest.raises(ValueError, match="holds a GPT language model, not a translator"):
        save_translator(tmp_path, translator, task, config)
    assert _checkpoint_files(tmp_path) == gpt_files and load_checkpoint(tmp_path)[2]["kind"] == "language_model"
    save_translator(tmp_path, translator, task, config, overwrite=True)
    assert load_translator(tmp_path)[2]["kind"] == "translator"
    assert _names(tmp_path) == ["loss.png", "meta.json", "model-2.npz", "model-best.npz"]
    assert (tmp_path / "model-best.npz").read_bytes() == b"the user's own"


# ------------------------------------------------------------ the rule for --out
def test_check_out_folder_uses_only_new_or_empty_folders_unless_told(tmp_path):
    check_out_folder(tmp_path / "new")
    check_out_folder(tmp_path)  # empty
    check_out_folder(None)  # nothing will be written
    _save(tmp_path / "run", 1)
    with pytest.raises(ValueError, match="already holds arrays saved from Python at step 1; continue it with --resume, "
                                         "give --overwrite"):
        check_out_folder(tmp_path / "run", resumable=True)
    check_out_folder(tmp_path / "run", overwrite=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    (tmp_path / "mine" / ".hidden").write_text("x")
    with pytest.raises(ValueError, match=r"holds files but no checkpoint \(notes.txt\)"):
        check_out_folder(tmp_path / "mine")
    check_out_folder(tmp_path / "mine", overwrite=True)
    with pytest.raises(ValueError, match="is a file"):
        check_out_folder(tmp_path / "mine" / "notes.txt", overwrite=True)
    with pytest.raises(ValueError, match="is also --checkpoint"):
        check_out_folder(tmp_path / "run", overwrite=True, reads={"--checkpoint": str(tmp_path / "run" / ".")})
    (tmp_path / "cut").mkdir()  # the first save of a run was killed: nothing to lose
    (tmp_path / "cut" / "meta.json").write_text('{"format_version": 2, "kind": "custom", "pending": ["model-1.npz"]}')
    check_out_folder(tmp_path / "cut")


def _fails(argv, capsys, *needles):
    capsys.readouterr()  # what earlier commands printed (progress bars)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("to be or not to be, that is the question. " * 30, encoding="utf-8")
    return path


def test_train_refuses_an_out_that_holds_a_run_unless_resume_or_overwrite(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(corpus), *TINY_TRAIN, "--out", str(out)]) == 0
    before = {name: (out / name).read_bytes() for name in _names(out)}
    _fails(["train", "--data", str(corpus), *TINY_TRAIN, "--out", str(out)], capsys,
           "already holds a GPT language model at step 1", "--resume", "--overwrite")
    assert {name: (out / name).read_bytes() for name in _names(out)} == before  # nothing touched
    _fails(["train", "--out", str(out), "--resume", "--overwrite"], capsys, "give one of them")
    assert main(["train", "--out", str(out), "--resume", "--max-iters", "2"]) == 0
    (out / "model-best.npz").write_bytes(b"mine")
    assert main(["train", "--data", str(corpus), *TINY_TRAIN, "--model", "lstm", "--out", str(out), "--overwrite"]) == 0
    assert load_checkpoint(out)[2]["model_type"] == "lstm"
    assert (out / "model-best.npz").read_bytes() == b"mine"
    assert set(_names(out)) == {"loss.png", "model-best.npz", *_checkpoint_files(out)}
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    _fails(["train", "--data", str(corpus), *TINY_TRAIN, "--out", str(mine)], capsys, "holds files but no checkpoint")


def test_translate_never_replaces_a_gpt_unless_told(tmp_path, corpus, capsys):
    out = tmp_path / "gpt"
    assert main(["train", "--data", str(corpus), *TINY_TRAIN, "--out", str(out)]) == 0
    gpt_files = _checkpoint_files(out)
    _fails(["translate", "--train", "--out", str(out), *TINY_TRANSLATE], capsys, "already holds a GPT language model",
           "--overwrite")
    assert _checkpoint_files(out) == gpt_files and all((out / name).is_file() for name in gpt_files)
    assert main(["translate", "--train", "--out", str(out), *TINY_TRANSLATE, "--overwrite"]) == 0
    assert load_checkpoint(out)[2]["kind"] == "translator"
    assert set(_names(out)) == {"loss.png", *_checkpoint_files(out)}  # the GPT's own files gone, its plot kept


def test_finetune_never_writes_into_the_folder_it_reads_its_body_from(tmp_path, corpus, capsys):
    body = tmp_path / "body"
    assert main(["train", "--data", str(corpus), *TINY_TRAIN, "--out", str(body)]) == 0
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"{'pos' if i % 2 else 'neg'}\tto be {i % 2}\n" for i in range(20)), encoding="utf-8")
    argv = ["finetune", "--task", "classify", "--train", str(train), "--epochs", "1", "--ensemble", "1"]
    for extra in ([], ["--overwrite"]):
        _fails([*argv, "--checkpoint", str(body), "--out", str(body), *extra], capsys, "is also --checkpoint")
    assert load_checkpoint(body)[2]["kind"] == "language_model"
    _fails([*argv, "--out", str(body)], capsys, "already holds a GPT language model", "--overwrite")


# ------------------------------------------------------------ crashes mid-save
CRASH_AT = """
import os, pathlib, sys
import numpy as np
from tinytransformer.training.checkpoint import save_checkpoint
folder, crash_at, calls = sys.argv[1], int(sys.argv[2]), [0]
real_replace, real_unlink = os.replace, pathlib.Path.unlink
def replace(src, dst):  # each atomic write ends in one os.replace: die just before the k-th
    calls[0] += 1
    if calls[0] == crash_at:
        os._exit(9)
    real_replace(src, dst)
def unlink(path, missing_ok=False):  # crash_at 5: die after the commit, before the old files are removed
    if crash_at == 5 and path.suffix == ".npz":
        os._exit(9)
    real_unlink(path, missing_ok=missing_ok)
os.replace, pathlib.Path.unlink = replace, unlink
w = np.zeros((8, 4), np.float32)
save_checkpoint(folder, {"w": w + 2}, {"state": {"m": w - 2}}, {"step": 2})
"""


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4, 5],
                         ids=["after the journal's temp", "in the model", "in the optimizer", "before the commit",
                              "after the commit"])
def test_a_crash_at_each_step_of_a_save_loses_nothing_and_leaves_nothing(tmp_path, crash_at):
    _save(tmp_path, 1)
    result = subprocess.run([sys.executable, "-c", CRASH_AT, str(tmp_path), str(crash_at)], cwd=ROOT)
    assert result.returncode == 9
    state, optimizer, meta = load_checkpoint(tmp_path)
    expected = 2 if crash_at == 5 else 1
    assert meta["step"] == expected and (state["w"] == expected).all() and (optimizer["state"]["m"] == -expected).all()
    assert set(_names(tmp_path)) > set(_checkpoint_files(tmp_path))  # the crash left something behind
    _save(tmp_path, 3)
    assert _names(tmp_path) == _checkpoint_files(tmp_path)  # ... which the next save removed
    assert load_checkpoint(tmp_path)[2]["step"] == 3


SAVE_FOREVER = """
import sys
import numpy as np
from tinytransformer.training.checkpoint import save_checkpoint
folder, step = sys.argv[1], int(sys.argv[2])
w = np.zeros((256, 1024), np.float32)  # 1 MiB per file: a save takes long enough to be cut
while True:
    step += 1
    save_checkpoint(folder, {"w": w + step}, {"state": {"m": w - step}}, {"step": step})
    print(step, flush=True)
"""


def test_kill_9_in_the_middle_of_saves_always_leaves_the_last_checkpoint(tmp_path):
    rng, step = np.random.default_rng(0), 0
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(tmp_path), str(step)], cwd=ROOT,
                                 stdout=subprocess.PIPE, text=True)
        child.stdout.readline()  # one save done: the next ones are under way
        time.sleep(rng.uniform(0.0, 0.2))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        state, optimizer, meta = load_checkpoint(tmp_path)
        step = meta["step"]
        assert step >= 1 and (state["w"] == step).all() and (optimizer["state"]["m"] == -step).all()
    _save(tmp_path, step + 1)
    assert _names(tmp_path) == _checkpoint_files(tmp_path)
