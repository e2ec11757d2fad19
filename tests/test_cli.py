"""The `tinytransformer` command end to end on a tiny corpus: train, resume, generate, and one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinytransformer.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--eval-iters", "2", "--warmup-iters", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run of 4 steps on a small text file, evaluated and saved every 2."""
    folder = tmp_path_factory.mktemp("cli")
    corpus = folder / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question. " * 30, encoding="utf-8")
    out = folder / "run"
    code = main(["train", "--data", str(corpus), *TINY, "--max-iters", "4", "--eval-interval", "2", "--out", str(out)])
    assert code == 0
    return out


def test_train_writes_a_checkpoint_and_the_loss_plot(trained):
    meta = json.loads((trained / "meta.json").read_text())
    assert meta["step"] == 4
    assert meta["history"]["eval_step"] == [0, 2, 4]
    assert meta["model_config"]["n_embd"] == 16 and meta["tokenizer"]["type"] == "char"
    assert (trained / meta["files"]["model"]).is_file() and (trained / meta["files"]["optimizer"]).is_file()
    assert (trained / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regularisers_default_off_for_a_gpt_and_nanogpts_for_recurrent_models(trained, tmp_path):
    """A GPT trains without weight decay and clipping unless asked (README "Train a GPT"); rnn/lstm keep 0.1 and 1.0."""
    saved = json.loads((trained / "meta.json").read_text())["train_config"]
    assert saved["weight_decay"] == 0.0 and saved["grad_clip"] == 0.0
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question. " * 30, encoding="utf-8")
    for flags, expected in ((["--model", "lstm"], (0.1, 1.0)), (["--weight-decay", "0.2", "--grad-clip", "0.5"], (0.2, 0.5))):
        out = tmp_path / "-".join(flags)
        assert main(["train", "--data", str(corpus), *TINY, *flags, "--max-iters", "1", "--out", str(out)]) == 0
        saved = json.loads((out / "meta.json").read_text())["train_config"]
        assert (saved["weight_decay"], saved["grad_clip"]) == expected


def test_resume_continues_the_saved_run(trained, tmp_path, capsys):
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    for f in trained.iterdir():
        (resumed / f.name).write_bytes(f.read_bytes())
    assert main(["train", "--out", str(resumed), "--resume", "--max-iters", "6"]) == 0
    meta = json.loads((resumed / "meta.json").read_text())
    assert meta["step"] == 6 and meta["history"]["eval_step"] == [0, 2, 4, 6]
    assert "resuming" in capsys.readouterr().out


def _generate(checkpoint, capsys, *flags):
    assert main(["generate", "--checkpoint", str(checkpoint), "--max-new-tokens", "30", *flags]) == 0
    return capsys.readouterr().out


def test_generate_prints_text_and_a_seed_makes_it_repeatable(trained, capsys):
    a = _generate(trained, capsys, "--prompt", "to be", "--seed", "1")
    b = _generate(trained, capsys, "--prompt", "to be", "--seed", "1")
    c = _generate(trained, capsys, "--prompt", "to be", "--seed", "2", "--temperature", "1.5")
    assert a == b
    assert a != c
    assert a.startswith("to be") and len(a.rstrip("\n")) == len("to be") + 30
    greedy = _generate(trained, capsys, "--prompt", "to be", "--temperature", "0", "--seed", "7")
    assert greedy == _generate(trained, capsys, "--prompt", "to be", "--temperature", "0", "--seed", "8")


def test_a_bpe_run_saves_its_tokenizer_and_generates(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("naïve café, déjà vu; " * 60, encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--data", str(corpus), "--tokenizer", "bpe", "--vocab-size", "270", *TINY, "--max-iters", "2",
            "--eval-interval", "2", "--out", str(out)]
    assert main(argv) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tokenizer"]["type"] == "bpe" and meta["model_config"]["vocab_size"] == 270
    capsys.readouterr()
    text = _generate(out, capsys, "--prompt", "déjà", "--max-new-tokens", "5")
    assert text.startswith("déjà")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--n-embd", "100", "--n-head", "3"], "--n-embd 100 is not divisible by --n-head 3"),
        (["train", "--dropout", "1.5"], "argument --dropout: must be in [0, 1), got 1.5"),
        (["train", "--lr", "fast"], "argument --lr: must be a number, got 'fast'"),
        (["train", "--data", "no/such/file.txt"], "is neither a corpus name"),
        (["train", "--out", "no/such/run", "--resume"], "is not a checkpoint"),
        (["generate", "--checkpoint", "no/such/run"], "is not a checkpoint"),
        (["generate"], "--checkpoint or pretrained: give one of the two"),
    ],
)
def test_bad_flags_and_values_give_one_line_and_exit_code_2(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1, err


def test_a_prompt_outside_the_vocabulary_is_one_line(trained, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--checkpoint", str(trained), "--prompt", "ZEBRA"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "'Z'" in err and len(err.strip().splitlines()) == 1


def test_python_dash_m_runs_the_command():
    """The real entry point, in a fresh interpreter: a bad value is one line on stderr, no traceback."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "tinytransformer", "train", "--n-embd", "100", "--n-head", "3"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tinytransformer train: error: --n-embd 100 is not divisible by --n-head 3 (see tinytransformer train --help)"
    )
    assert result.stdout == ""



def test_a_bad_backend_in_the_environment_is_one_line(tmp_path):
    env = dict(os.environ, TINYTRANSFORMER_BACKEND="fortran",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "tinytransformer", "train", "--max-iters", "1", "--n-layer", "1",
                             "--out", str(tmp_path / "run")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tinytransformer train: error: TINYTRANSFORMER_BACKEND='fortran': expected one of ('numpy', 'numba') "
        "(see tinytransformer train --help)")
