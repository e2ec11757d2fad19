"""The language-model task: its config is the only home of `tinytransformer train`'s defaults, so the
command with no flags and the Python call with no arguments train the same model."""

from dataclasses import MISSING, fields

import numpy as np
import pytest

from tinytransformer.cli import COMMANDS, build_parser
from tinytransformer.tasks.language_model import (
    DEFAULT_MAX_ITERS, MODEL_DEFAULTS, LanguageModelConfig, prepare_pretraining,
)
from tinytransformer.tasks.options import options


def _config_from_cli(argv):
    args = build_parser().parse_args(argv)
    return args.config_class(**{f.name: getattr(args, f.name) for f in options(args.config_class)})


def test_train_without_flags_is_the_config_without_arguments():
    assert _config_from_cli(["train"]) == LanguageModelConfig()


def test_the_cli_and_python_train_the_same_model():
    """Same model and loop settings, same initial weights, same first steps, bit for bit."""
    from_cli, from_python = prepare_pretraining(config=_config_from_cli(["train"])), prepare_pretraining()
    assert from_cli.model.config.to_dict() == from_python.model.config.to_dict()
    assert from_cli.config.to_dict() == from_python.config.to_dict()
    assert from_python.config.max_iters == DEFAULT_MAX_ITERS
    assert (from_python.config.weight_decay, from_python.config.grad_clip) == (0.0, 0.0)
    assert from_python.model.config.bias is False
    for (name, a), b in zip(from_cli.model.state_dict().items(), from_python.model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert [from_cli.train_step() for _ in range(2)] == [from_python.train_step() for _ in range(2)]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_shows_its_config_default(command):
    """The parser's default for each flag is the config field's default: no second copy in the CLI."""
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    config_class = sub.get_default("config_class")
    actions = {a.dest: a for a in sub._actions}
    for f in options(config_class):
        default = f.default_factory() if f.default is MISSING else f.default
        assert actions[f.name].default == default, f.name
        assert actions[f.name].help.replace("%%", "%") == f.metadata["help"], f.name
    assert {f.name for f in options(config_class)} == {f.name for f in fields(config_class) if f.metadata.get("flag")}


def test_a_recurrent_model_keeps_nanogpts_regularisers():
    config = LanguageModelConfig(model="lstm")
    assert (config.weight_decay, config.grad_clip) == (MODEL_DEFAULTS["lstm"]["weight_decay"],
                                                       MODEL_DEFAULTS["lstm"]["grad_clip"]) == (0.1, 1.0)
    assert LanguageModelConfig(model="lstm", weight_decay=0.0).weight_decay == 0.0


@pytest.mark.parametrize("bad, message", [
    ({"n_layer": 0}, "n_layer must be in [1, inf), got 0"),
    ({"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
    ({"lr": float("inf")}, "lr must be finite"),
    ({"block_size": 8.5}, "block_size must be an integer"),
    ({"tokenizer": "words"}, "tokenizer must be one of char, bpe"),
    ({"n_embd": 10, "n_head": 4}, "n_embd 10 is not divisible by n_head 4"),
])
def test_bad_settings_name_the_field_and_value(bad, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        LanguageModelConfig(**bad)


def test_an_integral_float_is_taken_as_an_integer():
    assert LanguageModelConfig(block_size=8.0).block_size == 8
    assert isinstance(LanguageModelConfig(block_size=8.0).block_size, int)
