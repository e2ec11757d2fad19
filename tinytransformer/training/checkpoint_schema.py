"""What a checkpoint's meta.json may hold, checked before anything is built from it.

A checkpoint folder may have been edited, copied from elsewhere or cut short, so
``check_meta`` checks every value of its meta.json before the value drives any work:

    the envelope   format_version, kind, save_count; the files it names are model-<n>.npz and
                   optimizer-<n>.npz inside the folder (no "..", no "/", nothing else)
    the kind       the keys a checkpoint of that kind holds (``KEYS``): an unknown key, a missing
                   one or a value of the wrong JSON type is an error naming meta.json and the key
    the configs    each model config goes through its own dataclass, so its own checks run
                   (building a config allocates nothing; the arrays are compared with it later,
                   in ``checkpoint_arrays``)
    the tokenizer  rebuilt from its dict; its pre-tokenization pattern must be one the library
                   writes (``PATTERNS``): a regular expression is code (``(a+)+$`` takes
                   exponential time on a long word, ``(`` does not compile)

Every checkpoint records its ``kind``. What a folder holds (``what_it_holds``: the kind, or for a
language model its type: gpt, rnn, lstm or bert), who writes that and which command reads
it (``HOLDS``) make the message when a command is given the wrong folder:

    runs/tr holds a translator (written by `tinytransformer translate --train`); `generate` reads
    a language model: use `tinytransformer translate --checkpoint runs/tr`
"""

import re
import types
from dataclasses import MISSING, fields

from ..data import SPLIT_PATTERN, tokenizer_from_dict
from ..data.word_features import CharVocab
from ..data.translation import DIRECTIONS, MAX_NUMBER
from ..data.word_tokenizer import WHITESPACE_PATTERN
from ..models.bert import BertConfig, BertForMaskedLM
from ..models.gpt import GPT, GPTConfig
from ..models.heads import BODIES, POOLINGS
from ..models.rnn_lm import RNNLM, RNNLMConfig
from ..models.seq2seq import Seq2SeqConfig
from ..models.tagger import BiTaggerConfig

FORMAT_VERSION = 2  # 2: every checkpoint records its kind and the files it owns
ARRAY_FILE = re.compile(r"(model|optimizer)-[0-9]{1,9}\.npz")  # the only names a save writes (and removes)
MODEL_TYPES = ("gpt", "rnn", "lstm", "bert")
MODEL_CONFIGS = {"gpt": GPTConfig, "rnn": RNNLMConfig, "lstm": RNNLMConfig, "bert": BertConfig}  # per model_type
# what a folder holds -> (what that is, who writes it, how to read it)
HOLDS = {
    "gpt": ("a GPT language model", "`tinytransformer train`", "tinytransformer generate --checkpoint {}"),
    "rnn": ("an RNN language model", "`tinytransformer train --model rnn`", "tinytransformer generate --checkpoint {}"),
    "lstm": ("an LSTM language model", "`tinytransformer train --model lstm`",
             "tinytransformer generate --checkpoint {}"),
    "bert": ("a BERT encoder (a masked language model: it fills in hidden words, it does not generate text)",
             "`tinytransformer train --model bert`", "tinytransformer finetune --checkpoint {} ..."),
    "pretrained_body": ("a pretrained language model (a GPT body)", "`tinytransformer finetune`, into OUT/pretrained",
                        "tinytransformer finetune --checkpoint {} ..."),
    "classifier": ("a classifier", "`tinytransformer finetune --task classify`", "tinytransformer classify --checkpoint {}"),
    "tagger": ("a tagger", "`tinytransformer finetune --task tag`", "tinytransformer tag --checkpoint {}"),
    "translator": ("a translator", "`tinytransformer translate --train`", "tinytransformer translate --checkpoint {}"),
    "custom": ("arrays saved from Python", "`save_checkpoint`", "tinytransformer.training.load_checkpoint('{}')"),
}
# The pre-tokenization patterns the library writes into checkpoints, per tokenizer type.
PATTERNS = {"bpe": (SPLIT_PATTERN,), "word": (WHITESPACE_PATTERN,)}
# The largest position table a translator builds without an array to show its size (sinusoidal, rotary),
# and the most test numbers it draws: both otherwise unbounded by anything in the folder.
MAX_POSITIONS, MAX_TEST_SIZE = 8192, 1_000_000

ENVELOPE = {"format_version": int, "kind": str, "save_count": int, "files": dict}
ENVELOPE_OPTIONAL = {"superseded": list, "pending": list, "optimizer": dict}
TRAINER = {"step": int, "model_config": dict, "train_config": dict, "tokenizer": (dict, None), "rng": dict,
           "scheduler": dict, "history": dict}  # what Trainer.save writes
HEADED = {"head": dict, "labels": list, "model_config": dict, "tokenizer": dict}
FINETUNED = {"recipe": dict, "finetune": dict, "history": dict}  # what `finetune` adds
HEAD_BODY = {"body_type": str}  # "gpt" or "bert" (models.heads.BODIES); absent: a GPT, as before it was recorded
# kind -> (keys it must hold, keys it may hold), besides the envelope; "custom" holds the caller's own keys
KEYS = {
    "language_model": ({**TRAINER, "model_type": str}, {"data": str}),
    "pretrained_body": ({"model_config": dict, "tokenizer": dict}, {"data": str}),
    "classifier": (HEADED, {**FINETUNED, **HEAD_BODY}),
    "tagger": (HEADED, {**FINETUNED, **HEAD_BODY}),
    "translator": ({"model_config": dict, "task": dict}, {"translate_config": dict, "results": dict}),
    "custom": None,
}
# A tagger with a model_type is no head on a body but a whole model of its own: "bitagger", the BiTagger of
# models/tagger.py (written by tasks/tagging.py), with its word tokenizer and characters.
BITAGGER_KEYS = ({"model_type": str, "model_config": dict, "tokenizer": dict, "char_vocab": dict, "labels": list},
                 {"recipe": dict, "tagging": dict, "history": dict})


def what_it_holds(meta) -> str:
    """What a checkpoint holds: its kind, or for a language model its type ("gpt", "rnn", "lstm" or "bert")."""
    return meta.get("model_type") if meta.get("kind") == "language_model" else meta.get("kind")


def is_bitagger(meta) -> bool:
    """Whether a meta.json is a tagger checkpoint of a ``BiTagger`` (``BITAGGER_KEYS``) rather than of a head."""
    return meta.get("kind") == "tagger" and "model_type" in meta


def describe(meta) -> str:
    """What a meta.json (checked or not) holds, in words: "a translator", "an LSTM language model", ..."""
    what = what_it_holds(meta)
    if what in HOLDS:
        return HOLDS[what][0]
    if meta.get("kind") is None:
        return "a checkpoint without a kind (written by an older tinytransformer)"
    return f"a checkpoint of unknown kind {meta.get('kind')!r}"


def kind_of(model) -> dict:
    """The kind ``Trainer.save`` records for ``model`` when the run's meta names none."""
    if isinstance(model, GPT):
        return {"kind": "language_model", "model_type": "gpt"}
    if isinstance(model, RNNLM):
        return {"kind": "language_model", "model_type": model.config.cell}
    if isinstance(model, BertForMaskedLM):
        return {"kind": "language_model", "model_type": "bert"}
    return {"kind": "custom"}


def check_holds(meta, folder, accepted, reader, wants=None):
    """A ValueError unless the checkpoint in ``folder`` holds one of ``accepted`` (names of ``HOLDS``),
    saying what it holds, who wrote it, and the command that reads it."""
    what = what_it_holds(meta)
    if what in accepted:
        return
    wants = wants or " or ".join(HOLDS[a][0] for a in accepted)
    noun, writer, use = HOLDS[what]
    raise ValueError(f"{folder} holds {noun} (written by {writer}); `{reader}` reads {wants}: "
                     f"use `{use.format(folder)}`")


# ------------------------------------------------------------------ checks
def _show(value, limit=60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is(value, expected) -> bool:
    """Whether a JSON value is of the ``expected`` type (a type, None, or a tuple of them)."""
    if isinstance(expected, tuple):
        return any(_is(value, e) for e in expected)
    if expected is None:
        return value is None
    if expected in (int, float):  # JSON has no bools among its numbers
        return not isinstance(value, bool) and isinstance(value, int if expected is int else (int, float))
    return isinstance(value, expected)


def _type_name(expected) -> str:
    if isinstance(expected, tuple):
        return " or ".join(_type_name(e) for e in expected)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "an object",
             list: "a list", None: "null"}
    return names[expected]


def check_keys(obj, where, required, optional=None, prefix=""):
    """Unknown keys, missing keys and values of the wrong JSON type in ``obj``: a ValueError naming
    ``where`` (meta.json) and the key (``prefix`` + key, e.g. "head.members")."""
    optional = optional or {}
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: {prefix.rstrip('.') or 'the file'} must be a JSON object, got {_show(obj)}")
    known = {**required, **optional}
    unknown = sorted(k for k in obj if k not in known)
    if unknown:
        raise ValueError(f"{where}: unknown key{'s' * (len(unknown) > 1)} {', '.join(prefix + k for k in unknown)} "
                         f"(known: {', '.join(prefix + k for k in known)})")
    missing = [k for k in required if k not in obj]
    if missing:
        raise ValueError(f"{where}: missing key{'s' * (len(missing) > 1)} {', '.join(prefix + k for k in missing)}")
    for key, value in obj.items():
        if not _is(value, known[key]):
            raise ValueError(f"{where}: {prefix}{key} must be {_type_name(known[key])}, got {_show(value)}")


def check_number(value, where, name, low, high=float("inf")):
    """An int in [low, high], else a ValueError naming ``where`` and ``name``."""
    if not _is(value, int) or not low <= value <= high:
        raise ValueError(f"{where}: {name} must be an integer in [{low}, {high}], got {_show(value)}")


def check_file_name(name, where, field):
    """A name meta.json gives for one of the checkpoint's files: a plain name inside the folder."""
    if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", "..") or "\0" in name:
        raise ValueError(f"{where}: {field} is {_show(name)}, which is not a file inside the checkpoint folder "
                         "(no '..', no '/', no absolute paths)")
    if not ARRAY_FILE.fullmatch(name):
        raise ValueError(f"{where}: {field} is {_show(name)}; a checkpoint's files are named model-<n>.npz "
                         "and optimizer-<n>.npz")
    return name


def recorded_files(record, where) -> tuple:
    """``(files, owned)`` of a meta.json: the names of its live arrays (``files``), and every file it says
    a save wrote (those, the ones a save was writing, the ones it was removing): the only files a later
    save may remove. Each name is checked to be a checkpoint file inside the folder."""
    files = record.get("files", {})
    if not isinstance(files, dict) or set(files) - {"model", "optimizer"}:
        raise ValueError(f"{where}: files must be an object naming a model and an optimizer file, got {_show(files)}")
    live = {check_file_name(name, where, f"files.{key}") for key, name in files.items()}
    owned = set(live)
    for key in ("pending", "superseded"):
        names = record.get(key, [])
        if not isinstance(names, list):
            raise ValueError(f"{where}: {key} must be a list of file names, got {_show(names)}")
        owned |= {check_file_name(name, where, f"{key}[{i}]") for i, name in enumerate(names)}
    return live, owned


def _json_type(annotation):
    """The JSON type(s) of a config field's annotation: ``int``, ``"float"``, ``int | None`` -> (int, None)."""
    if isinstance(annotation, types.UnionType):
        return tuple(None if a is type(None) else _json_type(a) for a in annotation.__args__)
    return {"int": int, "float": float, "bool": bool, "str": str}.get(annotation, annotation)


def check_config(config, cls, where, key="model_config"):
    """``cls(**config)`` (a model's config dataclass), after its keys and JSON types are checked; the
    dataclass's own checks then name the bad value. Nothing is allocated: a config is a few numbers."""
    kinds = {f.name: _json_type(f.type) for f in fields(cls)}
    required = {f.name: kinds[f.name] for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    optional = {f.name: kinds[f.name] if f.default is not None or isinstance(kinds[f.name], tuple)
                else (kinds[f.name], None) for f in fields(cls) if f.name not in required}
    check_keys(config, where, required, optional, prefix=key + ".")
    try:
        return cls(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {key}: {err}") from None


def check_tokenizer(tokenizer, where):
    """The tokenizer a meta.json describes, rebuilt; its pattern must be one of ``PATTERNS``."""
    kind = tokenizer.get("type")
    if kind in PATTERNS and tokenizer.get("pattern", PATTERNS[kind][0]) not in PATTERNS[kind]:
        raise ValueError(f"{where}: tokenizer.pattern is {_show(tokenizer['pattern'])}, not a pattern the library "
                         f"writes ({', '.join(map(repr, PATTERNS[kind]))}); a pattern read from a file is "
                         "never compiled")
    try:
        return tokenizer_from_dict(tokenizer)
    except (TypeError, ValueError, KeyError, IndexError) as err:
        raise ValueError(f"{where}: tokenizer: {err}") from None


def _check_translation_task(task, where):
    """The number-translation task a translator was trained on: its ranges and test set, bounded."""
    check_keys(task, where, {"direction": str, "train_range": list, "test_range": list, "test_size": int,
                             "seed": int}, prefix="task.")
    if task["direction"] not in DIRECTIONS:
        raise ValueError(f"{where}: task.direction must be one of {DIRECTIONS}, got {_show(task['direction'])}")
    for name in ("train_range", "test_range"):
        low_high = task[name]
        if len(low_high) != 2 or not all(_is(v, int) for v in low_high) or not 0 <= low_high[0] < low_high[1] \
                or low_high[1] > MAX_NUMBER + 1:
            raise ValueError(f"{where}: task.{name} must be [low, high) with 0 <= low < high <= {MAX_NUMBER + 1}, "
                             f"got {_show(low_high)}")
    half = (task["test_range"][1] - task["test_range"][0]) // 2
    check_number(task["test_size"], where, "task.test_size", 1, min(half, MAX_TEST_SIZE))
    check_number(task["seed"], where, "task.seed", 0)


def check_meta(meta, where):
    """Check a meta.json (``meta``, read from the file ``where``) as the module docstring says; a
    ValueError naming ``where`` and the key at fault, or None."""
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: must hold a JSON object, got {type(meta).__name__} {_show(meta)}")
    if not _is(meta.get("format_version"), int):
        raise ValueError(f"{where}: format_version must be an integer, got {_show(meta.get('format_version'))}")
    if meta["format_version"] != FORMAT_VERSION:
        older = meta["format_version"] < FORMAT_VERSION
        raise ValueError(
            f"{where}: format_version {meta['format_version']} was written by "
            + ("an older tinytransformer, before checkpoints recorded their kind and their own files; "
               f"this version reads format {FORMAT_VERSION}: train the model again" if older else
               f"a newer tinytransformer; this version reads format {FORMAT_VERSION}: upgrade tinytransformer"))
    if "files" not in meta and "pending" in meta:
        raise ValueError(f"{where}: the folder holds no complete checkpoint: its first save was interrupted")
    kind = meta.get("kind")
    if kind not in KEYS:
        raise ValueError(f"{where}: kind is {_show(kind)}; known kinds: {', '.join(KEYS)}")
    if KEYS[kind] is None:  # custom: the caller's keys, the envelope checked
        check_keys({k: v for k, v in meta.items() if k in ENVELOPE or k in ENVELOPE_OPTIONAL}, where, ENVELOPE,
                   ENVELOPE_OPTIONAL)
    else:
        required, optional = BITAGGER_KEYS if is_bitagger(meta) else KEYS[kind]
        check_keys(meta, where, {**ENVELOPE, **required}, {**ENVELOPE_OPTIONAL, **optional})
    check_number(meta["save_count"], where, "save_count", 1)
    live, _ = recorded_files(meta, where)
    if "model" not in meta["files"]:
        raise ValueError(f"{where}: files names no model file")
    if ("optimizer" in meta) != ("optimizer" in meta["files"]):
        raise ValueError(f"{where}: optimizer and files.optimizer must come together")
    if kind != "custom":
        _check_kind(meta, where)


def _check_kind(meta, where):
    """The keys of one kind: its config, tokenizer, head or task (``check_meta``)."""
    kind = meta["kind"]
    if is_bitagger(meta):
        return _check_bitagger(meta, where)
    if kind == "language_model":
        if meta["model_type"] not in MODEL_TYPES:
            raise ValueError(f"{where}: model_type must be one of {MODEL_TYPES}, got {_show(meta['model_type'])}")
        check_number(meta["step"], where, "step", 0)
    if kind == "translator":
        config = check_config(meta["model_config"], Seq2SeqConfig, where)
        if config.positional != "learned" and config.max_len > MAX_POSITIONS:
            raise ValueError(f"{where}: model_config.max_len is {config.max_len}, more than the {MAX_POSITIONS} "
                             f"positions a {config.positional} table may have")
        _check_translation_task(meta["task"], where)
        return
    recurrent = kind == "language_model" and meta["model_type"] in ("rnn", "lstm")
    config_class = MODEL_CONFIGS[meta["model_type"]] if kind == "language_model" else GPTConfig
    if kind in ("classifier", "tagger"):
        body = meta.get("body_type", "gpt")
        if body not in BODIES:
            raise ValueError(f"{where}: body_type must be one of {tuple(BODIES)}, got {_show(body)}")
        config_class = BODIES[body].config
    config = check_config(meta["model_config"], config_class, where)
    if recurrent and config.cell != meta["model_type"]:
        raise ValueError(f"{where}: model_config.cell is {config.cell!r}, but model_type is {meta['model_type']!r}")
    if meta["tokenizer"] is not None:
        tokenizer = check_tokenizer(meta["tokenizer"], where)
        if tokenizer.vocab_size != config.vocab_size:
            raise ValueError(f"{where}: the tokenizer has {tokenizer.vocab_size} ids, but model_config.vocab_size "
                             f"is {config.vocab_size}")
    if kind in ("classifier", "tagger"):
        head = meta["head"]
        check_keys(head, where, {"dropout": float, "pooling": (str, None), "members": (int, None)}, prefix="head.")
        if not 0 <= head["dropout"] < 1:
            raise ValueError(f"{where}: head.dropout must be in [0, 1), got {_show(head['dropout'])}")
        if head["pooling"] not in (*POOLINGS, None):
            raise ValueError(f"{where}: head.pooling must be one of {POOLINGS}, got {_show(head['pooling'])}")
        if head["pooling"] == "cls" and BODIES[body].causal:
            raise ValueError(f"{where}: head.pooling is 'cls', which a causal body ({body}) cannot use")
        if head["members"] is not None:
            check_number(head["members"], where, "head.members", 1)
        check_labels(meta["labels"], where)


def check_labels(labels, where):
    """A classifier's or tagger's labels: two or more distinct strings."""
    if len(labels) < 2 or not all(isinstance(x, str) for x in labels) or len(set(labels)) != len(labels):
        raise ValueError(f"{where}: labels must be two or more distinct strings, got {_show(labels)}")


def _check_bitagger(meta, where):
    """A BiTagger's checkpoint: its config, word tokenizer, characters and labels, their sizes agreeing."""
    if meta["model_type"] != "bitagger":
        raise ValueError(f"{where}: a tagger's model_type must be 'bitagger' (or absent: a head on a body), "
                         f"got {_show(meta['model_type'])}")
    config = check_config(meta["model_config"], BiTaggerConfig, where)
    tokenizer = check_tokenizer(meta["tokenizer"], where)
    check_keys(meta["char_vocab"], where, {"type": str, "chars": list}, prefix="char_vocab.")
    try:
        chars = CharVocab.from_dict(meta["char_vocab"])
    except ValueError as err:
        raise ValueError(f"{where}: char_vocab: {err}") from None
    check_labels(meta["labels"], where)
    for name, size, what in (("vocab_size", tokenizer.vocab_size, "the tokenizer has {} ids"),
                             ("char_vocab_size", chars.vocab_size, "char_vocab has {} ids"),
                             ("num_tags", len(meta["labels"]), "labels holds {} tags")):
        if getattr(config, name) != size:
            raise ValueError(f"{where}: {what.format(size)}, but model_config.{name} is {getattr(config, name)}")
