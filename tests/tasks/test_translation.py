"""The translation task: its config is the only home of `tinytransformer translate`'s defaults, training
runs the one training loop, and the command trains, saves and translates end to end."""

import io
import numpy as np
import pytest

from tinytransformer.cli import build_parser, main
from tinytransformer.tasks.options import options
from tinytransformer.tasks.translation import (
    TranslateConfig, evaluate_translator, load_translator, run, save_translator, train_translator, translate,
)

FLAGS = ["--train", "--out", "--checkpoint", "--beam", "--threads", "--direction", "--max-number", "--test-size",
         "--max-steps", "--max-seconds", "--batch-size", "--lr", "--d-model", "--num-layers", "--positional", "--seed",
         "--overwrite"]


def _config_from_cli(argv):
    args = build_parser().parse_args(argv)
    return args.config_class(**{f.name: getattr(args, f.name) for f in options(args.config_class)})


def test_translate_without_flags_is_the_config_without_arguments():
    assert _config_from_cli(["translate"]) == TranslateConfig()
    c = TranslateConfig()
    assert c.train_range == (0, 1_000_000) and c.max_number == 999_999 and c.test_range is None
    assert _config_from_cli(["translate", "--max-number", "9999"]).train_range == (0, 10_000)
    assert TranslateConfig(train_range=(0, 100)).max_number == 99  # a range given wins over max_number


def test_the_flags_are_the_ones_the_command_always_had():
    names = {f"--{f.name.replace('_', '-')}" for f in options(TranslateConfig) if not f.metadata["positional"]}
    assert names == set(FLAGS)
    config = _config_from_cli(["translate", "4,213", "12", "--beam", "3"])
    assert config.texts == ["4,213", "12"] and config.beam == 3


@pytest.mark.parametrize("argv", [["--beam", "0"], ["--max-number", "0"], ["--direction", "sideways"],
                                  ["--max-seconds", "-1"], ["--positional", "alibi"]])
def test_bad_values_are_one_line_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", *argv])
    assert exit_info.value.code == 2 and "error:" in capsys.readouterr().err


def test_training_runs_the_loop_and_reports_its_history(tmp_path):
    config = TranslateConfig(max_steps=4, train_range=(0, 1000), test_size=20, d_model=16, batch_size=8)
    model, task, history = train_translator(config, progress=False)
    assert set(history) == {"loss", "steps", "seconds", "cpu_seconds"}
    assert history["steps"] == len(history["loss"]) == 4 and not model.training
    again = train_translator(config, progress=False)[2]
    assert again["loss"] == history["loss"]  # seeded: the same numbers, bit for bit
    results = evaluate_translator(model, task, beam_size=2)
    assert set(results) == {"exact_match", "bleu", "n", "mistakes"} and results["n"] == 20
    save_translator(tmp_path / "t", model, task, config, results)
    loaded, loaded_task, meta = load_translator(tmp_path / "t")
    assert meta["translate_config"]["max_steps"] == 4
    np.testing.assert_array_equal(loaded_task.test_numbers, task.test_numbers)
    assert translate(loaded, loaded_task, ["12", "421"]) == translate(model, task, ["12", "421"])


def test_run_without_train_or_checkpoint_says_what_to_give():
    with pytest.raises(ValueError, match="give --checkpoint DIR"):
        run(TranslateConfig())


def test_cli_translate_trains_saves_and_translates(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    code = main(["translate", "--train", "--out", str(out), "--max-steps", "3", "--test-size", "8",
                 "--d-model", "16", "--batch-size", "8"])
    assert code == 0
    report = capsys.readouterr().out
    assert "exact match" in report and "BLEU" in report
    assert main(["translate", "--checkpoint", str(out), "4,213", "12"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("4,213\t")
    monkeypatch.setattr("sys.stdin", io.StringIO("7\n\n1000\n"))
    assert main(["translate", "--checkpoint", str(out), "--beam", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    with pytest.raises(SystemExit):
        main(["translate", "--checkpoint", str(out), "12.5"])
    assert "parse_number" in capsys.readouterr().err
