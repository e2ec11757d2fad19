"""`tinytransformer finetune`, `classify` and `tag` end to end on tiny files, and their one-line errors."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinytransformer.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "8", "--epochs", "2"]
REVIEWS = ["a good film", "good fun , good acting", "bad plot", "a bad , bad film", "great fun", "awful acting"]


def _write_classification(path, n, seed):
    rng = np.random.default_rng(seed)
    lines = ["label\ttext"]
    for i in rng.integers(0, len(REVIEWS), n):
        lines.append(f"{'pos' if i in (0, 1, 4) else 'neg'}\t{REVIEWS[i]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _write_tagging(path, n, seed):
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n):
        name = ["Ann", "Lee"] if rng.random() < 0.5 else ["Bo"]
        words = ["we", "met", *name, "today"]
        tags = ["O", "O", "B-person", *["I-person"] * (len(name) - 1), "O"]
        sentences.append("\n".join(f"{w}\t{t}" for w, t in zip(words, tags)))
    path.write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetune")
    train = _write_classification(folder / "train.tsv", 60, 0)
    dev = _write_classification(folder / "dev.tsv", 20, 1)
    out = folder / "model"
    code = main(["finetune", "--task", "classify", "--train", str(train), "--dev", str(dev), "--test", str(dev),
                 *TINY, "--pretrain-steps", "3", "--ensemble", "2", "--lr", "1e-2", "--out", str(out)])
    assert code == 0
    return out


def test_finetune_prints_epochs_and_saves_the_model_results_and_pretrained_body(classifier, capsys):
    meta = json.loads((classifier / "meta.json").read_text())
    assert meta["kind"] == "classifier" and meta["head"]["members"] == 2 and meta["labels"] == ["neg", "pos"]
    results = json.loads((classifier / "results.json").read_text())
    assert set(results) >= {"dev", "test", "members_dev", "seconds"}
    pretrained = json.loads((classifier / "pretrained" / "meta.json").read_text())
    assert pretrained["tokenizer"] == meta["tokenizer"]  # one tokenizer for the body and the fine-tuned model
    for split in ("dev", "test"):  # a confusion-matrix plot per scored split, a real PNG
        assert (classifier / f"confusion_{split}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_finetune_log_has_a_line_per_epoch(tmp_path, capsys):
    train = _write_classification(tmp_path / "train.tsv", 40, 0)
    assert main(["finetune", "--task", "classify", "--train", str(train), *TINY, "--pretrain-steps", "0",
                 "--ensemble", "1", "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "from scratch" in out
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and all("train loss" in e and "dev accuracy" in e for e in epochs)
    assert "(best so far)" in epochs[0]


def _classify_lines(text):
    rows = [line.split("\t") for line in text.strip().splitlines()]
    assert all(len(r) == 3 for r in rows)
    return [(label, float(p), t) for label, p, t in rows]


def test_classify_reads_a_file_and_standard_input_alike(classifier, tmp_path, capsys, monkeypatch):
    texts = tmp_path / "texts.txt"
    texts.write_text("a good film\n\nawful acting\n", encoding="utf-8")
    assert main(["classify", "--checkpoint", str(classifier), "--input", str(texts)]) == 0
    from_file = _classify_lines(capsys.readouterr().out)
    assert [t for _, _, t in from_file] == ["a good film", "awful acting"]
    assert all(label in ("neg", "pos") and 0.5 <= p <= 1 for label, p, _ in from_file)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a good film\nawful acting\n"))
    assert main(["classify", "--checkpoint", str(classifier)]) == 0
    assert _classify_lines(capsys.readouterr().out) == from_file


def test_finetune_tag_then_tag_prints_a_tag_per_token(tmp_path, capsys):
    train = _write_tagging(tmp_path / "train.conll", 40, 0)
    out = tmp_path / "tagger"
    assert main(["finetune", "--task", "tag", "--tagger", "head", "--train", str(train), *TINY, "--vocab-size", "270",
                 "--pretrain-steps", "2", "--ensemble", "1", "--out", str(out)]) == 0
    assert "entity F1" in capsys.readouterr().out
    result = subprocess.run([sys.executable, "-m", "tinytransformer", "tag", "--checkpoint", str(out)],
                            input="we met Ann Lee today\nBo\n", capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.strip().split("\n\n")
    rows = [[line.split("\t") for line in block.splitlines()] for block in blocks]
    assert [[w for w, _ in r] for r in rows] == [["we", "met", "Ann", "Lee", "today"], ["Bo"]]
    assert all(tag in ("O", "B-person", "I-person") for r in rows for _, tag in r)


def _fails(args, capsys, match):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err


def test_bad_input_is_one_line_and_exit_code_2(classifier, tmp_path, capsys, monkeypatch):
    _fails(["classify", "--checkpoint", str(tmp_path / "nowhere")], capsys, "is not a checkpoint")
    _fails(["tag", "--checkpoint", str(classifier), "--input", str(tmp_path / "none.txt")], capsys,
           "holds a classifier")
    _fails(["classify", "--checkpoint", str(classifier / "pretrained"), "--input", "x"], capsys,
           "holds a pretrained language model")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"caf\xe9\n")
    _fails(["classify", "--checkpoint", str(classifier), "--input", str(binary)], capsys, "not UTF-8")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n  \n"))
    _fails(["classify", "--checkpoint", str(classifier)], capsys, "holds no text")
    _fails(["finetune", "--task", "classify", "--out", str(tmp_path / "o")], capsys, "give either data")
    _fails(["finetune", "--task", "tag", "--data", "sst2", "--out", str(tmp_path / "o")], capsys,
           "is a classification task")
    bad = tmp_path / "bad.tsv"
    bad.write_text("pos\tfine\nno tab here\n", encoding="utf-8")
    _fails(["finetune", "--task", "classify", "--train", str(bad), "--out", str(tmp_path / "o")], capsys,
           "bad.tsv:2")
    _fails(["finetune", "--task", "classify", "--train", str(bad), "--epochs", "0", "--out", "o"], capsys,
           "must be in [1, inf)")


def test_help_states_the_task_defaults_the_recipe_uses(capsys):
    from tinytransformer.tasks.finetune import TASK_DEFAULTS

    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    c, t = TASK_DEFAULTS["classify"], TASK_DEFAULTS["tag"]
    for flag, key in (("--pretrain-steps", "pretrain_steps"), ("--n-layer", "n_layer"), ("--epochs", "epochs"),
                      ("--ensemble", "ensemble"), ("--min-freq", "min_freq"), ("--tokenizer", "tokenizer")):
        assert f"default classify/tag: {c[key]}/{t[key]}" in text, flag


def test_a_pretrained_checkpoint_brings_its_tokenizer_and_freeze_keeps_its_weights(classifier, tmp_path):
    from tinytransformer.training import load_checkpoint

    train = _write_classification(tmp_path / "train.tsv", 30, 2)
    out = tmp_path / "frozen"
    assert main(["finetune", "--task", "classify", "--train", str(train), "--checkpoint", str(classifier / "pretrained"),
                 "--freeze", "--epochs", "1", "--ensemble", "1", "--out", str(out)]) == 0
    body, _, pretrained_meta = load_checkpoint(classifier / "pretrained")
    state, _, meta = load_checkpoint(out)
    assert meta["tokenizer"] == pretrained_meta["tokenizer"]
    for name, value in body.items():
        np.testing.assert_array_equal(state[f"body.{name}"], value, err_msg=name)
