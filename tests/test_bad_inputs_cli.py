"""A catalogue of bad inputs to the `tinytransformer` command, and the contract each one must meet.

Every row of ``CASES`` is something a user can get wrong: a flag, a value, a file
(missing, empty, binary, of the other kind), an empty standard input, a
checkpoint of the wrong kind. Each must end with exit code 2 and exactly one line
on standard error that names what was wrong (the flag, file or value: the row's
fragment), never a traceback. The rows run in-process through
``tinytransformer.cli.main`` (fast); ``SUBPROCESS`` reruns a few as
``python -m tinytransformer``. Below the catalogue: ``--debug``, internal errors
(exit code 1), the notes on inputs longer than the model's block, and the
optional extras (matplotlib, scikit-learn, tqdm, Numba) simulated as missing.
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinytransformer.cli import main

ROOT = Path(__file__).resolve().parent.parent
GPT = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
       "--eval-iters", "2", "--warmup-iters", "2"]
HEAD = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "8", "--epochs", "1", "--ensemble", "1",
        "--pretrain-steps", "0"]
TRANSLATOR = ["--max-steps", "2", "--d-model", "16", "--num-layers", "1", "--test-size", "5", "--batch-size", "4"]
REVIEWS = ["a good film", "good fun , good acting", "bad plot", "a bad , bad film", "great fun", "awful acting"]


def _files(folder):
    """The inputs the catalogue refers to as {name}."""
    files = {
        "corpus": "to be or not to be, that is the question. " * 30,
        "tsv": "".join(f"{'pos' if i % 3 else 'neg'}\t{REVIEWS[i % 6]}\n" for i in range(60)),
        "conll": "\n\n".join(f"we\tO\nmet\tO\n{name}\tB-person\ntoday\tO" for name in ["Ann", "Bo"] * 20) + "\n",
        "empty": "",
        "blank": "\n   \n\t\n",
        "one": "a",
        "bad_tsv": "pos\tfine\nno tab here\n",
        "bad_conll": "we\tO\nmet\tO\tX\n",
        "bad_csv": "label,text\npos\n",
        "unseen_tsv": "happy\ta good film\n",
        "words": "a good film\n",
    }
    paths = {}
    for name, text in files.items():
        suffix = {"tsv": ".tsv", "bad_tsv": ".tsv", "unseen_tsv": ".tsv", "conll": ".conll", "bad_conll": ".conll",
                  "bad_csv": ".csv"}.get(name, ".txt")
        paths[name] = folder / f"{name}{suffix}"
        paths[name].write_text(text, encoding="utf-8")
    paths["binary"] = folder / "binary.txt"
    paths["binary"].write_bytes(b"caf\xe9 \xff\xfe\n")
    paths["dir"] = folder / "a_folder"
    paths["dir"].mkdir()
    paths["nowhere"] = folder / "nowhere.txt"
    return paths


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The files above, and four tiny checkpoints: a GPT, a classifier, a tagger and a translator."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    paths = _files(folder)
    for name, argv in {
        "gpt": ["train", "--data", str(paths["corpus"]), *GPT, "--max-iters", "2", "--eval-interval", "2"],
        "cls": ["finetune", "--task", "classify", "--train", str(paths["tsv"]), *HEAD],
        "tagger": ["finetune", "--task", "tag", "--tagger", "head", "--train", str(paths["conll"]), *HEAD, "--vocab-size", "270"],
        "tr": ["translate", "--train", *TRANSLATOR],
    }.items():
        paths[name] = folder / name
        assert main([*argv, "--out", str(paths[name])]) == 0
    paths["out"] = folder / "unused_out"  # no case may write there: each must fail before it writes anything
    paths["figures"] = folder / "figures"
    return {name: str(path) for name, path in paths.items()}


# (id, argv with {placeholders}, standard input, fragment the one line must hold); a list of marks may follow
CASES = [
    # ------------------------------------------------ the command line itself
    ("no-command", [], "", "required: command"),
    ("unknown-command", ["nosuchcommand"], "", "invalid choice: 'nosuchcommand'"),
    ("unknown-flag", ["train", "--bogus"], "", "--bogus"),
    ("flag-without-value", ["train", "--n-layer"], "", "--n-layer: expected one argument"),
    ("int-not-a-number", ["train", "--n-layer", "x"], "", "--n-layer: must be an integer, got 'x'"),
    ("int-not-integral", ["train", "--batch-size", "2.5"], "", "--batch-size: must be an integer, got '2.5'"),
    ("int-zero", ["train", "--n-layer", "0"], "", "--n-layer: must be in [1, inf), got 0"),
    ("int-negative", ["train", "--block-size", "-5"], "", "--block-size: must be in [1, inf), got -5"),
    ("float-inf", ["train", "--lr", "inf"], "", "--lr: must be finite"),
    ("float-nan", ["train", "--lr", "nan"], "", "--lr: must be finite"),
    ("float-negative", ["train", "--lr", "-1"], "", "--lr: must be in [0, inf)"),
    ("float-word", ["train", "--lr", "fast"], "", "--lr: must be a number, got 'fast'"),
    ("dropout-one", ["train", "--dropout", "1"], "", "--dropout: must be in [0, 1)"),
    ("vocab-too-small", ["train", "--tokenizer", "bpe", "--vocab-size", "10"], "",
     "--vocab-size must be at least 256 for a bpe tokenizer"),
    ("bert-without-specials", ["train", "--model", "bert", "--tokenizer", "char"], "",
     "--tokenizer char has no ids for the special tokens a BERT needs"),
    ("bad-choice", ["train", "--tokenizer", "words"], "", "--tokenizer: invalid choice: 'words'"),
    ("bad-model", ["train", "--model", "transformer"], "", "--model: invalid choice: 'transformer'"),
    ("heads-do-not-divide", ["train", "--n-embd", "100", "--n-head", "3"], "", "--n-embd 100 is not divisible by --n-head 3"),
    ("max-iters-zero", ["train", "--max-iters", "0"], "", "--max-iters: must be in [1, inf)"),
    ("seed-negative", ["train", "--seed", "-1"], "", "--seed: must be in [0, inf)"),
    ("eval-interval-zero", ["train", "--eval-interval", "0"], "", "--eval-interval: must be in [1, inf)"),
    ("warmup-negative", ["train", "--warmup-iters", "-1"], "", "--warmup-iters: must be in [0, inf)"),
    ("demo-zero-steps", ["demo", "--max-iters", "0"], "", "--max-iters: must be in [1, inf)"),
    # --------------------------------------------------------- train's data
    ("corpus-missing", ["train", "--data", "{nowhere}", "--out", "{out}"], "", "nowhere.txt"),
    ("corpus-is-a-folder", ["train", "--data", "{dir}", "--out", "{out}"], "", "a_folder is a directory"),
    ("corpus-empty", ["train", "--data", "{empty}", "--out", "{out}"], "", "empty.txt holds no text"),
    ("corpus-blank", ["train", "--data", "{blank}", "--out", "{out}"], "", "blank.txt holds no text"),
    ("corpus-binary", ["train", "--data", "{binary}", "--out", "{out}"], "", "binary.txt is not UTF-8"),
    ("corpus-shorter-than-block", ["train", "--data", "{one}", "--out", "{out}"], "", "one.txt: the training split"),
    ("block-size-huge", ["train", "--data", "{corpus}", "--block-size", "1000000000", "--out", "{out}"], "",
     "use a smaller --block-size"),
    ("model-too-big", ["train", "--data", "{corpus}", "--n-embd", "1000000", "--n-head", "1", "--out", "{out}"], "",
     "use a smaller --n-embd"),
    ("batch-too-big", ["train", "--data", "{corpus}", "--batch-size", "1000000000", "--out", "{out}"], "",
     "batches of 1,000,000,000 x 64 tokens"),
    ("resume-nothing", ["train", "--out", "{nowhere}", "--resume"], "", "is not a checkpoint"),
    ("resume-a-classifier", ["train", "--out", "{cls}", "--resume"], "", "{cls} holds a classifier"),
    # ------------------------------------------------------------- generate
    ("generate-no-checkpoint", ["generate"], "", "--checkpoint or pretrained: give one of the two"),
    ("generate-both", ["generate", "--checkpoint", "{gpt}", "--pretrained", "{gpt}"], "",
     "--checkpoint or pretrained: give one of the two"),
    ("generate-pretrained-missing", ["generate", "--pretrained", "{nowhere}"], "", "nowhere.txt: not a folder"),
    ("generate-missing", ["generate", "--checkpoint", "{nowhere}"], "", "is not a checkpoint"),
    ("generate-a-file", ["generate", "--checkpoint", "{corpus}"], "", "corpus.txt is not a checkpoint"),
    ("prompt-empty", ["generate", "--checkpoint", "{gpt}", "--prompt", ""], "", "--prompt must not be empty"),
    ("prompt-unknown-char", ["generate", "--checkpoint", "{gpt}", "--prompt", "ZEBRA"], "", "'Z'"),
    ("temperature-negative", ["generate", "--checkpoint", "{gpt}", "--temperature", "-1"], "", "--temperature"),
    ("temperature-nan", ["generate", "--checkpoint", "{gpt}", "--temperature", "nan"], "", "--temperature: must be finite"),
    ("top-p-zero", ["generate", "--checkpoint", "{gpt}", "--top-p", "0"], "", "--top-p: must be in (0, 1]"),
    ("top-p-above-one", ["generate", "--checkpoint", "{gpt}", "--top-p", "1.5"], "", "--top-p: must be in (0, 1]"),
    ("top-k-zero", ["generate", "--checkpoint", "{gpt}", "--top-k", "0"], "", "--top-k: must be in [1, inf)"),
    ("no-new-tokens", ["generate", "--checkpoint", "{gpt}", "--max-new-tokens", "0"], "", "--max-new-tokens"),
    ("generate-a-classifier", ["generate", "--checkpoint", "{cls}"], "", "{cls} holds a classifier"),
    ("generate-a-translator", ["generate", "--checkpoint", "{tr}"], "", "{tr} holds a translator"),
    # ------------------------------------------------------------- finetune
    ("finetune-nothing", ["finetune"], "", "required: --task, --out"),
    ("finetune-no-data", ["finetune", "--task", "classify", "--out", "{out}"], "", "give either data"),
    ("finetune-data-and-train", ["finetune", "--task", "classify", "--data", "sst2", "--train", "{tsv}", "--out", "{out}"],
     "", "not both"),
    ("finetune-unknown-task", ["finetune", "--task", "translate", "--out", "{out}"], "", "--task: invalid choice"),
    ("finetune-unknown-data", ["finetune", "--task", "classify", "--data", "imdb", "--out", "{out}"], "",
     "--data: invalid choice: 'imdb'"),
    ("finetune-task-mismatch", ["finetune", "--task", "tag", "--data", "sst2", "--out", "{out}"], "",
     "'sst2' is a classification task"),
    ("finetune-builtin-with-dev", ["finetune", "--task", "classify", "--data", "sst2", "--dev", "{tsv}", "--out", "{out}"],
     "", "comes with its own dev and test splits"),
    ("conll-given-to-classify", ["finetune", "--task", "classify", "--train", "{conll}", "--out", "{out}"], "",
     "conll.conll:1: 'we\\tO' and every other line read as CoNLL"),
    ("tsv-given-to-tag", ["finetune", "--task", "tag", "--train", "{tsv}", "--out", "{out}"], "",
     "tsv.tsv:1: 'neg\\ta good film' reads as label<TAB>text"),
    ("conll-dev-for-classify", ["finetune", "--task", "classify", "--train", "{tsv}", "--dev", "{conll}", "--out", "{out}"],
     "", "conll.conll:1"),
    ("train-file-empty", ["finetune", "--task", "classify", "--train", "{empty}", "--out", "{out}"], "",
     "empty.txt holds no examples"),
    ("train-file-missing", ["finetune", "--task", "tag", "--train", "{nowhere}", "--out", "{out}"], "", "nowhere.txt"),
    ("train-file-binary", ["finetune", "--task", "classify", "--train", "{binary}", "--out", "{out}"], "",
     "binary.txt: not UTF-8"),
    ("tsv-line-without-tab", ["finetune", "--task", "classify", "--train", "{bad_tsv}", "--out", "{out}"], "",
     "bad_tsv.tsv:2: expected 'label<TAB>text'"),
    ("conll-line-with-three-fields", ["finetune", "--task", "tag", "--train", "{bad_conll}", "--out", "{out}"], "",
     "bad_conll.conll:2: expected 'token<TAB>tag'"),
    ("csv-line-with-one-field", ["finetune", "--task", "classify", "--train", "{bad_csv}", "--out", "{out}"], "",
     "bad_csv.csv:2: expected 'label,text'"),
    ("dev-label-unseen", ["finetune", "--task", "classify", "--train", "{tsv}", "--dev", "{unseen_tsv}", "--out", "{out}"],
     "", "unseen_tsv.tsv) has labels the training data lacks: ['happy']"),
    ("epochs-zero", ["finetune", "--task", "classify", "--train", "{tsv}", "--epochs", "0", "--out", "{out}"], "",
     "--epochs: must be in [1, inf)"),
    ("ensemble-zero", ["finetune", "--task", "classify", "--train", "{tsv}", "--ensemble", "0", "--out", "{out}"], "",
     "--ensemble: must be in [1, inf)"),
    ("pooling-unknown", ["finetune", "--task", "classify", "--train", "{tsv}", "--pooling", "sum", "--out", "{out}"], "",
     "--pooling: invalid choice: 'sum'"),
    ("body-missing", ["finetune", "--task", "classify", "--train", "{tsv}", "--checkpoint", "{nowhere}", "--out", "{out}"],
     "", "is not a checkpoint"),
    ("body-a-translator", ["finetune", "--task", "classify", "--train", "{tsv}", "--checkpoint", "{tr}", "--out", "{out}"],
     "", "{tr} holds a translator"),
    # ------------------------------------------------------ classify and tag
    ("classify-empty-stdin", ["classify", "--checkpoint", "{cls}"], "", "standard input holds no text"),
    ("classify-blank-stdin", ["classify", "--checkpoint", "{cls}"], "\n  \n\t\n", "standard input holds no text"),
    ("classify-input-missing", ["classify", "--checkpoint", "{cls}", "--input", "{nowhere}"], "",
     "--input {nowhere}: No such file or directory"),
    ("classify-input-a-folder", ["classify", "--checkpoint", "{cls}", "--input", "{dir}"], "", "--input {dir}: Is a directory"),
    ("classify-input-empty", ["classify", "--checkpoint", "{cls}", "--input", "{empty}"], "", "empty.txt holds no text"),
    ("classify-input-binary", ["classify", "--checkpoint", "{cls}", "--input", "{binary}"], "", "binary.txt: not UTF-8"),
    ("classify-no-checkpoint", ["classify"], "a good film\n", "required: --checkpoint"),
    ("classify-with-a-gpt", ["classify", "--checkpoint", "{gpt}"], "a good film\n", "{gpt} holds a GPT language model"),
    ("classify-with-a-tagger", ["classify", "--checkpoint", "{tagger}"], "a good film\n", "{tagger} holds a tagger"),
    ("classify-with-a-translator", ["classify", "--checkpoint", "{tr}"], "a good film\n", "{tr} holds a translator"),
    ("tag-empty-stdin", ["tag", "--checkpoint", "{tagger}"], "", "standard input holds no text"),
    ("tag-input-binary", ["tag", "--checkpoint", "{tagger}", "--input", "{binary}"], "", "binary.txt: not UTF-8"),
    ("tag-with-a-classifier", ["tag", "--checkpoint", "{cls}"], "we met Bo\n", "{cls} holds a classifier"),
    # ------------------------------------------------------------ translate
    ("translate-nothing", ["translate"], "", "give --checkpoint DIR"),
    ("translate-empty-stdin", ["translate", "--checkpoint", "{tr}"], "", "standard input holds no text"),
    ("translate-blank-stdin", ["translate", "--checkpoint", "{tr}"], "\n \n", "standard input holds no text"),
    ("translate-empty-text", ["translate", "--checkpoint", "{tr}", ""], "", "'' is not a non-negative whole number"),
    ("translate-a-word", ["translate", "--checkpoint", "{tr}", "abc"], "", "'abc' is not a non-negative whole number"),
    ("translate-negative", ["translate", "--checkpoint", "{tr}", "-5"], "", "'-5'"),
    ("translate-too-large", ["translate", "--checkpoint", "{tr}", "99999999999"], "", "'99999999999' is outside"),
    ("beam-huge", ["translate", "--checkpoint", "{tr}", "--beam", "100000", "12"], "", "--beam: must be in [1, 64]"),
    ("beam-zero", ["translate", "--checkpoint", "{tr}", "--beam", "0", "12"], "", "--beam: must be in [1, 64]"),
    ("threads-zero", ["translate", "--checkpoint", "{tr}", "--threads", "0", "12"], "", "--threads"),
    ("translate-with-a-gpt", ["translate", "--checkpoint", "{gpt}", "12"], "", "{gpt} holds a GPT language model"),
    ("translate-missing", ["translate", "--checkpoint", "{nowhere}", "12"], "", "is not a checkpoint"),
    ("max-number-zero", ["translate", "--train", "--max-number", "0"], "", "--max-number: must be in [1, "),
    ("direction-unknown", ["translate", "--train", "--direction", "sideways"], "", "--direction: invalid choice"),
    ("positional-unknown", ["translate", "--train", "--positional", "bogus"], "", "--positional: invalid choice"),
    ("max-seconds-negative", ["translate", "--train", "--max-seconds", "-1"], "", "--max-seconds: must be in [0, inf)"),
    # -------------------------------------------------------------- inspect
    ("inspect-nothing", ["inspect"], "", "required: --text"),
    ("inspect-no-checkpoint", ["inspect", "--text", "hi"], "", "--checkpoint or pretrained: give one of the two"),
    ("inspect-empty-text", ["inspect", "--checkpoint", "{gpt}", "--text", ""], "", "--text must not be empty"),
    ("inspect-blank-text", ["inspect", "--checkpoint", "{gpt}", "--text", "  "], "", "--text must not be empty"),
    ("inspect-unknown-char", ["inspect", "--checkpoint", "{gpt}", "--text", "ZZZ", "--out", "{figures}"], "", "'Z'"),
    ("inspect-unknown-view", ["inspect", "--checkpoint", "{gpt}", "--text", "to be", "--what", "all"], "",
     "--what: invalid choice: 'all'"),
    ("inspect-attribution-of-a-tagger", ["inspect", "--checkpoint", "{tagger}", "--text", "we met", "--out", "{figures}"], "",
     "this checkpoint tags every token"),
    ("inspect-missing", ["inspect", "--checkpoint", "{nowhere}", "--text", "to be"], "", "is not a checkpoint"),
    ("inspect-a-translator", ["inspect", "--checkpoint", "{tr}", "--text", "12"], "", "{tr} holds a translator"),
]
SUBPROCESS = ["translate-empty-stdin", "conll-given-to-classify", "block-size-huge", "beam-huge",
              "classify-input-missing", "unknown-flag"]


def _param(case):
    name, argv, stdin, fragment, *marks = case
    return pytest.param(argv, stdin, fragment, id=name, marks=marks[0] if marks else ())


def _fill(items, env):
    return [item.format(**env) for item in items]


def _check_one_line(code, err, fragment, expected_code=2):
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert code == expected_code, (code, err)
    assert fragment in lines[0], (fragment, lines[0])


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 60
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("argv, stdin, fragment", [_param(case) for case in CASES])
def test_a_bad_input_is_one_line_and_exit_code_2(argv, stdin, fragment, env, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exit_info:
        main(_fill(argv, env))
    _check_one_line(exit_info.value.code, capsys.readouterr().err, fragment.format(**env))
    assert not Path(env["out"]).exists() and not Path(env["figures"]).exists()


@pytest.mark.parametrize("name", SUBPROCESS)
def test_the_same_through_python_dash_m(name, env):
    _, argv, stdin, fragment, *_ = next(case for case in CASES if case[0] == name)
    result = subprocess.run([sys.executable, "-m", "tinytransformer", *_fill(argv, env)], input=stdin,
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    _check_one_line(result.returncode, result.stderr, fragment.format(**env))
    assert result.stdout == ""


# ---------------------------------------------------------------- --debug and internal errors
@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_lets_the_error_raise_with_its_traceback(where, env):
    argv = ["train", "--data", env["nowhere"], "--out", env["out"]]
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        main(["--debug", *argv] if where == "before" else [*argv, "--debug"])


def test_debug_through_python_dash_m_prints_the_traceback(env):
    result = subprocess.run([sys.executable, "-m", "tinytransformer", "--debug", "generate", "--checkpoint",
                             env["nowhere"]], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 1 and "Traceback" in result.stderr and "is not a checkpoint" in result.stderr


def test_an_internal_error_is_one_line_with_exit_code_1(env, capsys, monkeypatch):
    from tinytransformer.tasks import text_generation

    def broken(config):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'")

    monkeypatch.setattr(text_generation, "print_generated", broken)
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--checkpoint", env["gpt"]])
    err = capsys.readouterr().err
    _check_one_line(exit_info.value.code, err, "internal error: unsupported operand", expected_code=1)
    assert "(TypeError)" in err and "please report it" in err and "--debug" in err
    with pytest.raises(TypeError):
        main(["--debug", "generate", "--checkpoint", env["gpt"]])


def test_ctrl_c_is_one_line_with_exit_code_130(env, capsys, monkeypatch):
    from tinytransformer.tasks import text_generation

    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(text_generation, "print_generated", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--checkpoint", env["gpt"]])
    _check_one_line(exit_info.value.code, capsys.readouterr().err, "interrupted", expected_code=130)


def test_a_long_message_stays_one_readable_line(env, capsys, monkeypatch):
    from tinytransformer.tasks import text_generation

    def verbose(config):
        raise ValueError("load_state_dict: missing keys\n" + ", ".join(f"'layer.{i}.weight'" for i in range(200)))

    monkeypatch.setattr(text_generation, "print_generated", verbose)
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--checkpoint", env["gpt"]])
    err = capsys.readouterr().err
    _check_one_line(exit_info.value.code, err, "missing keys 'layer.0.weight'")
    assert "more characters; --debug shows all" in err and len(err) < 600


# ------------------------------------------------------------------- inputs longer than the block
def test_tag_says_which_lines_are_cut_and_still_tags_every_word(env, capsys, monkeypatch):
    block = json.loads(Path(env["tagger"], "meta.json").read_text())["model_config"]["block_size"]
    long_line = " ".join(["we", "met", "Bo"] * block)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"we met Bo\n\n{long_line}\n"))
    assert main(["tag", "--checkpoint", env["tagger"]]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"note: standard input: line 3 is longer than the model's block of {block} tokens; the words past it are "
        "tagged O without being read"]
    sentences = captured.out.strip().split("\n\n")
    assert [len(s.splitlines()) for s in sentences] == [3, 3 * block]  # every word still gets a tag


def test_classify_says_which_lines_are_cut(env, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("a good film\n" + " ".join(["good"] * 500) + "\n", encoding="utf-8")
    assert main(["classify", "--checkpoint", env["cls"], "--input", str(texts)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 2
    [note] = captured.err.strip().splitlines()
    assert note.startswith(f"note: {texts}: line 2 is longer than the model's block of ") and "first" in note


def test_generate_and_inspect_say_when_the_text_is_longer_than_the_block(env, tmp_path, capsys):
    text = "to be or not to be, that is the question. " * 2
    assert main(["generate", "--checkpoint", env["gpt"], "--prompt", text, "--max-new-tokens", "2"]) == 0
    assert capsys.readouterr().err.strip().splitlines() == [
        f"note: the prompt has {len(text)} tokens, more than the model's block of 16: it sees only the last 16"]
    assert main(["inspect", "--checkpoint", env["gpt"], "--text", text, "--what", "attention", "--out",
                 str(tmp_path)]) == 0
    assert capsys.readouterr().err.strip().splitlines() == [
        f"note: the text has {len(text)} tokens, more than the model's block of 16: only the last 16 are drawn"]


# -------------------------------------------------------------------------- optional extras
def _without(modules, argv, tmp_path, stdin=""):
    """``tinytransformer ARGV`` in a fresh process in which ``modules`` cannot be imported."""
    code = ("import sys\n"
            f"for name in {modules!r}:\n    sys.modules[name] = None  # import name -> ImportError\n"
            "from tinytransformer.cli import main\nsys.exit(main(sys.argv[1:]))")
    env = {k: v for k, v in os.environ.items() if k != "TINYTRANSFORMER_BACKEND"}  # the default backend's notes
    return subprocess.run([sys.executable, "-c", code, *argv], input=stdin, capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, env=env)


def _notes(stderr):
    return [line for line in stderr.splitlines() if line.startswith("note:")]


def test_train_without_matplotlib_trains_saves_and_says_so_once(env, tmp_path):
    out = tmp_path / "run"
    result = _without(["matplotlib", "tqdm"], ["train", "--data", env["corpus"], *GPT, "--max-iters", "4",
                                               "--eval-interval", "2", "--out", str(out)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["step"] == 4 and (out / meta["files"]["model"]).is_file()
    assert not (out / "loss.png").exists() and "loss curve" not in result.stdout
    plot_notes = [n for n in _notes(result.stderr) if "matplotlib" in n]
    assert plot_notes == ["note: loss.png not drawn: plotting needs matplotlib, which is not installed: pip install "
                          "matplotlib (or the plots extra: pip install 'tinytransformer[plots]')"]  # once, not 3 times


def test_inspect_without_matplotlib_is_a_one_line_error(env, tmp_path):
    result = _without(["matplotlib"], ["inspect", "--checkpoint", env["gpt"], "--text", "to be", "--out",
                                       str(tmp_path / "figures")], tmp_path)
    _check_one_line(result.returncode, result.stderr, "pip install matplotlib")
    assert not (tmp_path / "figures").exists()


def test_finetune_without_scikit_learn_keeps_accuracy_and_skips_the_confusion_matrices(env, tmp_path):
    out = tmp_path / "model"
    result = _without(["sklearn"], ["finetune", "--task", "classify", "--train", env["tsv"], "--dev", env["tsv"],
                                    *HEAD, "--out", str(out)], tmp_path)
    assert result.returncode == 0, result.stderr
    notes = _notes(result.stderr)
    assert len(notes) == 2 and all("pip install scikit-learn" in n for n in notes), notes
    assert "accuracy only" in notes[0] and "confusion matrices not drawn" in notes[1]
    assert "dev accuracy" in result.stdout and not list(out.glob("confusion_*.png"))
    assert json.loads((out / "results.json").read_text())["dev"].keys() == {"accuracy"}
    held_out = _without(["sklearn"], ["finetune", "--task", "classify", "--train", env["tsv"], *HEAD, "--out",
                                      str(tmp_path / "other")], tmp_path)
    _check_one_line(held_out.returncode, held_out.stderr, "pip install scikit-learn")
    assert "--dev" in held_out.stderr


def test_translate_without_tqdm_numba_and_threadpoolctl_trains_with_a_note_each(tmp_path):
    result = _without(["tqdm", "numba", "threadpoolctl"], ["translate", "--train", *TRANSLATOR, "--out",
                                                           str(tmp_path / "tr")], tmp_path)
    assert result.returncode == 0, result.stderr
    notes = _notes(result.stderr)
    assert len(notes) == 3, notes
    for package in ("pip install tqdm", "pip install numba", "threadpoolctl"):
        assert sum(package in n for n in notes) == 1, (package, notes)
    assert "Traceback" not in result.stderr and (tmp_path / "tr" / "meta.json").is_file()


def test_import_optional_names_the_extra():
    from tinytransformer.plots.backend import import_optional, missing_extra

    with pytest.raises(ImportError, match=r"pip install scikit-learn \(or the data extra") as info:
        import_optional("sklearn.no_such_module", "this feature")
    assert missing_extra(info.value) == "sklearn"
    assert missing_extra(ValueError("x")) is None


# ------------------------------------------------------------ the same roots, from Python
def test_a_file_of_the_other_kind_is_refused_with_its_line(tmp_path):
    from tinytransformer.data import load_task

    paths = _files(tmp_path)
    with pytest.raises(ValueError, match=r"conll.conll:1: .* a tagging file, not label<TAB>text"):
        load_task(paths["conll"], kind="classification")
    with pytest.raises(ValueError, match=r"tsv.tsv:1: .* reads as label<TAB>text, not CoNLL"):
        load_task(paths["tsv"], kind="tagging")
    header = tmp_path / "header.tsv"
    header.write_text("label\ttext\npos\tgreat\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header.tsv:1"):
        load_task(header, kind="tagging")
    words = tmp_path / "words.tsv"  # one-word texts that are not tags stay a classification file
    words.write_text("".join(f"{label}\t{word}\n" for label, word in [("pos", "great"), ("neg", "dull")] * 10))
    assert load_task(words, kind="classification", dev=words).labels == ("neg", "pos")


def test_sizes_are_checked_before_anything_is_allocated(tmp_path):
    from tinytransformer.tasks.language_model import LanguageModelConfig, check_memory, prepare_pretraining
    from tinytransformer.tasks.translation import TranslateConfig

    corpus = _files(tmp_path)["corpus"]
    with pytest.raises(ValueError, match=r"corpus.txt: the training split has 1,134 tokens, .* 1,000,000,001"):
        prepare_pretraining(config=LanguageModelConfig(data=str(corpus), block_size=10**9))
    with pytest.raises(ValueError, match="needs about .* GiB, more than this machine's"):
        check_memory("gpt", {"n_embd": 10**6, "n_layer": 4, "n_head": 4, "vocab_size": 65, "block_size": 64}, 12)
    check_memory("gpt", {"n_embd": 128, "n_layer": 4, "n_head": 4, "vocab_size": 65, "block_size": 64}, 12)
    with pytest.raises(ValueError, match=r"beam must be in \[1, 64\]"):
        TranslateConfig(beam=100_000)
