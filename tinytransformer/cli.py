"""The ``tinytransformer`` command: flags parsed into a task's config, then the task's ``run``. Nothing else.

    tinytransformer train --data shakespeare --out runs/shakespeare     pretrain a GPT, save checkpoints
    tinytransformer train --out runs/shakespeare --resume               continue that run exactly
    tinytransformer generate --checkpoint runs/shakespeare --prompt "ROMEO:"
    tinytransformer demo                                                train on Python's help pages, then sample
    tinytransformer train --model lstm --out runs/lstm                  the same with a recurrent language model
    tinytransformer translate --train --out runs/translate              numbers to words: train, test, save
    tinytransformer translate --checkpoint runs/translate "4,213"       ... then translate
    tinytransformer finetune --task classify --data sst2 --out runs/sst2    fine-tune for a task, keep the best
    tinytransformer classify --checkpoint runs/sst2 --input reviews.txt  label<TAB>probability<TAB>text per line
    tinytransformer inspect --checkpoint runs/gpt --text "def f(x):" --out runs/gpt/inspect   attention, logit lens, attribution PNGs
    tinytransformer exercises check 05                                  check exercises/05_attention.py, a line each

Every flag is a field of the command's config (``tinytransformer.tasks``),
whose default and help text it shows: the config is the only home of both.

The error contract. Standard output carries only results; standard error carries
one line per error or note, never a traceback unless asked for with --debug:

  exit 0   done. A note may precede: "note: ..." for an input cut to the model's
           block, or an optional part missing (a figure not drawn, and the pip
           command that brings it back).
  exit 2   an error the user can fix, in one line that names the flag, file or
           value: "tinytransformer CMD: error: ...". That is a bad flag or value
           (argparse, and each config's checks), and any ValueError (bad
           content, UnicodeDecodeError included), OSError (a missing,
           unreadable or unwritable file: named with its flag), KeyError (a key
           missing from a file given), MemoryError (sizes this machine cannot
           hold) or ImportError of an optional extra (which says what to
           install) raised while the command runs.
  exit 1   an internal error: anything else (TypeError, IndexError, ...) is a bug
           in tinytransformer, said in one line that asks for a report.
  exit 3   `exercises check`: an exercise does not pass yet (its line says why).
  exit 130 interrupted (Ctrl-C); the last checkpoint written stays.

``tinytransformer --debug CMD ...`` (or ``CMD ... --debug``) lets every error
after the flags are parsed raise with its traceback, user errors included.
"""

import argparse
import importlib
import os
import re
import sys
from dataclasses import MISSING
from pathlib import Path

from .kernels import backend as kernels_backend
from .plots.backend import install_hint, missing_extra, note_once
from .tasks.options import check_value, options

# command -> (module in tinytransformer.tasks, config class, function called with the config, help, description)
COMMANDS = {
    "train": ("language_model", "LanguageModelConfig", "run", "pretrain a language model on a text corpus",
              "Pretrain a GPT (or an RNN/LSTM) on a text corpus by next-token prediction, with AdamW, warmup + cosine "
              "learning rate and periodic validation. Writes a checkpoint and loss.png to --out at every evaluation. "
              "The defaults are nanoGPT's small CPU configuration for character-level Shakespeare, except that a GPT "
              "trains without weight decay and gradient clipping (measured better at this size: docs/shakespeare.md)."),
    "generate": ("text_generation", "GenerateConfig", "print_generated", "sample text from a trained checkpoint or GPT-2",
                 "Continue a prompt with a model saved by `tinytransformer train` (--checkpoint), or with GPT-2 "
                 "weights in Hugging Face's layout (--pretrained gpt2: docs/gpt2.md), using the KV cache."),
    "demo": ("text_generation", "DemoConfig", "demo", "train on Python's help pages, then print a sample",
             "`train --data pydoc` with the default model, then `generate` from it."),
    "finetune": ("finetune", "FinetuneRecipe", "run_finetune",
                 "fine-tune a GPT or BERT to classify sentences or tag tokens",
                 "Train a classification head (one label per line of text) or a tagging head (BIO tags per token) on "
                 "a GPT or BERT body: pretrained (--checkpoint, a GPT or an encoder; --pretrained, a GPT-2 in Hugging "
                 "Face's layout, fully or through LoRA adapters with --lora; or --pretrain-steps on the "
                 "task's own text, a GPT) or from scratch (a GPT). Prints the training loss and dev scores after "
                 "every epoch, keeps the best epoch by dev score, and saves the model (an ensemble when --ensemble "
                 "> 1) to --out. Defaults marked 'classify/tag' differ by task; those for classify are the measured "
                 "SST-2 recipe (docs/finetuning.md)."),
    "classify": ("finetuned", "ClassifyConfig", "print_classified", "classify lines of text with a fine-tuned model",
                 "Read one text per line (from --input, or standard input) and print label<TAB>probability<TAB>text."),
    "tag": ("finetuned", "TagConfig", "print_tagged", "tag lines of text with a fine-tuned model",
            "Read one text per line (from --input, or standard input) and print token<TAB>tag, a blank line between "
            "sentences. Words are split on whitespace."),
    "translate": ("translation", "TranslateConfig", "run", "train a numbers-to-words translator, or translate with one",
                  "Numbers into English words (\"4,213\" -> \"four thousand two hundred thirteen\"), or back, with an "
                  "encoder-decoder Transformer. --train trains one on generated pairs, reports exact match and BLEU on "
                  "held-out numbers and saves it to --out; --checkpoint DIR translates the TEXTs given, or each line "
                  "of standard input, printing source<TAB>translation (docs/translation.md)."),
    "inspect": ("inspection", "InspectConfig", "run", "draw attention maps, the logit lens and token attributions",
                "Look inside a saved model (from `train`, a classifier from `finetune`, or GPT-2 with --pretrained) on "
                "one text: every layer's "
                "and head's attention map, the logit lens (what each layer would predict next) and gradient x input "
                "attribution of the prediction (the class, or the next token) to the text's tokens. Writes "
                "attention.png, logit_lens.png and attribution.png to --out."),
    "exercises": ("exercises", "ExercisesConfig", "print_checked", "check your answers to a lesson's exercises",
                  "Run lesson NN's checks on exercises/NN_topic.py (from the project root): one line per exercise, "
                  "PASS, TODO (not written yet) or FAIL with what is wrong. Exit status 0 when every exercise "
                  "passes, 3 otherwise (exercises/README.md)."),
}


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block), pointing at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none to show (None, or an off switch)."""

    def _get_help_string(self, action):
        if action.required or action.default in (None, False, []) or "default" in action.help:
            return action.help
        return super()._get_help_string(action)


def _value_type(f):
    """The argparse ``type`` of a config field: parse the text, then check it as the config would."""
    kind = {"int": int, "float": float}.get(f.type, f.type) if isinstance(f.type, str) else f.type
    if kind not in (int, float):
        return None

    def parse(text):
        try:
            value = float(text) if kind is int and re.fullmatch(r"[+-]?\d+\.0*|[+-]?\d+e\+?\d+", text) else kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        try:
            return check_value("value", value, kind, f.metadata["within"])
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).replace("value ", "", 1)) from None

    return parse


def add_options(parser, config_class):
    """One flag (or positional argument) per ``option`` field of ``config_class``."""
    groups = {}
    for f in options(config_class):
        m = f.metadata
        target = parser if m["group"] is None else groups.setdefault(m["group"], parser.add_argument_group(m["group"]))
        default = f.default_factory() if f.default is MISSING else f.default
        kwargs = {"help": m["help"].replace("%", "%%"), "default": default}  # argparse formats help with %
        if m["choices"] is not None:
            kwargs["choices"] = m["choices"]
        if m["metavar"] is not None:
            kwargs["metavar"] = m["metavar"]
        if m["positional"]:
            target.add_argument(f.name, nargs="*" if m["many"] else None, **kwargs)
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            target.add_argument(flag, dest=f.name, action="store_true", help=kwargs["help"])
            continue
        if m["many"]:
            kwargs["action"] = "append"
        target.add_argument(flag, dest=f.name, type=_value_type(f), required=m["required"], **kwargs)


DEBUG_HELP = "let errors raise with their traceback (by default: one line; the exit codes: tinytransformer --help)"
USER_ERRORS = (ValueError, KeyError, OSError, MemoryError, ImportError)  # ImportError: of an optional extra only
MAX_MESSAGE = 400  # characters: one line stays readable


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tinytransformer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, (module, config_name, function, help_text, description) in COMMANDS.items():
        task = importlib.import_module(f"tinytransformer.tasks.{module}")
        command = sub.add_parser(name, formatter_class=HelpFormatter, help=help_text, description=description)
        config_class = getattr(task, config_name)
        add_options(command, config_class)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        command.set_defaults(config_class=config_class, run=getattr(task, function), command_parser=command)
    return parser


def _flag(name) -> str:
    return "--" + name.replace("_", "-")


def _with_flags(message, fields, leading=True) -> str:
    """A message in the flags' names: "n_embd 100 is ..." -> "--n-embd 100 is ..." (not "model_config.n_embd",
    a key in a file); a one-word field ("prompt", "text") only where a config's message starts with it
    (``leading``), since "data" or "task" are words too."""
    names = "|".join(f.name for f in fields if "_" in f.name)
    if names:
        message = re.sub(rf"(?<![\w.'\"-])({names})\b(?!['\"])", lambda m: _flag(m.group(1)), message)
    first = re.match(r"(\w+)\b", message) if leading else None
    if first and first.group(1) in {f.name for f in fields if not f.metadata["positional"]}:
        message = _flag(first.group(1)) + message[first.end():]
    return message


def _os_error(err, config, fields) -> str:
    """"--input reviews.txt: No such file or directory": an OSError with the flag that named its file."""
    if err.filename is None or not err.strerror:
        return str(err)
    target = Path(os.fsdecode(err.filename))
    for f in fields:
        value = getattr(config, f.name, None)
        if isinstance(value, str) and value and not f.metadata["positional"]:
            if Path(value) == target:
                return f"{_flag(f.name)} {target}: {err.strerror}"
            if Path(value) in target.parents:
                return f"{target}: {err.strerror} (in {_flag(f.name)} {value})"
    return f"{target}: {err.strerror}"


def is_user_error(err) -> bool:
    """Whether ``err`` is one the user can fix (exit code 2) rather than a bug (exit code 1)."""
    return isinstance(err, USER_ERRORS) and (not isinstance(err, ImportError) or missing_extra(err) is not None)


def describe_error(err, config=None, fields=()) -> str:
    """The one line a user error prints (after "tinytransformer CMD: error: ")."""
    if isinstance(err, OSError):
        message = _os_error(err, config, fields)
    elif isinstance(err, KeyError):  # KeyError("a sentence") carries a message; KeyError('model') only a key
        key = err.args[0] if err.args else None
        message = key if isinstance(key, str) and " " in key.strip() else f"missing key {key!r}"
    elif isinstance(err, MemoryError):
        message = f"out of memory ({err or 'no details'}); choose smaller sizes"
    else:
        message = str(err) or type(err).__name__
    message = " ".join(message.split())  # one line, always
    if len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]}... ({len(message) - MAX_MESSAGE} more characters; --debug shows all)"
    return message


def _note_numpy_kernels(args):
    """Training without Numba works, more slowly: said once, where it matters (a command that trains)."""
    trains = args.command in ("train", "demo", "finetune") or getattr(args, "train", False) is True
    if trains and kernels_backend.numba is None and not os.environ.get(kernels_backend.ENV_VAR):
        note_once(f"the kernels run their NumPy twins (slower), since Numba is not installed: {install_hint('numba')}")


def main(argv=None) -> int:
    """Run one command (see the module docstring for the exit codes); returns 0, or raises SystemExit."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command_parser
    fields = options(args.config_class)
    try:
        kernels_backend.get_backend()  # a bad TINYTRANSFORMER_BACKEND is said before any work
        config = args.config_class(**{f.name: getattr(args, f.name) for f in fields})
    except (ValueError, TypeError) as err:  # a bad combination of flags: said with the flags' names
        if args.debug:
            raise
        command.error(_with_flags(describe_error(err), fields))
    _note_numpy_kernels(args)
    try:
        args.run(config)
        sys.stdout.flush()
        return 0
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as other Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        command.exit(141)
    except KeyboardInterrupt:
        if args.debug:
            raise
        command.exit(130, f"{command.prog}: interrupted\n")
    except Exception as err:
        if args.debug:
            raise
        if is_user_error(err):
            message = _with_flags(describe_error(err, config, fields), fields, leading=False)
            command.exit(2, f"{command.prog}: error: {message}\n")
        command.exit(1, f"{command.prog}: internal error: {describe_error(err)} ({type(err).__name__}); this is a bug "
                        "in tinytransformer: please report it with the command that caused it (rerun it with --debug "
                        "for the traceback)\n")


if __name__ == "__main__":
    sys.exit(main())
