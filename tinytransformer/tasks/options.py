"""How a task's config declares its settings, so that one declaration serves Python, the CLI and README.

Each task (language model, fine-tuning, translation) is a dataclass whose
fields are its settings and whose defaults are the only defaults of that task:

    n_layer: int = option(4, "Transformer blocks", within="[1, inf)", group="model")

``option`` stores the help text (and, where useful, the interval the value
must lie ``within``, ``choices``, a ``metavar`` or a ``group`` heading) in the
field's metadata; ``tinytransformer.cli`` turns every field into a flag
(``n_layer`` -> ``--n-layer``) of the field's type, with that help and the
field's default, and ``check_options`` (called by each config's
``__post_init__``) checks the same intervals for a call from Python, with
``tinytransformer.validation.check_value`` (the package's one definition of a
valid number). A default of ``None`` means "decided by another setting"; the
help says by which.
"""

from dataclasses import field, fields

from ..validation import check_value  # the CLI imports it from here too


def option(default, help, *, within=None, choices=None, metavar=None, group=None, flag=True, required=False,
           positional=False, many=False):
    """A config field with its help text for ``--help``.

    ``within`` is an interval such as ``"[1, inf)"`` or ``"[0, 1)"``: square
    brackets include the bound, round ones exclude it. For the command line:
    ``flag=False`` keeps the field out of it, ``required`` makes the flag
    compulsory there, ``positional`` makes it an argument without a flag, and
    ``many`` takes a list (a positional: any number; a flag: repeated).
    """
    metadata = {"help": help, "within": within, "choices": choices, "metavar": metavar, "group": group, "flag": flag,
                "required": required, "positional": positional, "many": many}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def options(config_class) -> list:
    """The fields of ``config_class`` declared with ``option`` that the CLI shows as flags."""
    return [f for f in fields(config_class) if f.metadata.get("flag")]


def flags_for(config, leave_out=()) -> list:
    """The command-line flags that give ``config``'s values (``n_layer=4`` -> ``["--n-layer", "4"]``; a True switch
    -> its flag; None and False left out; a list, the flag repeated), but those named in ``leave_out``: how
    ``train --nproc`` hands its own flags to the processes it starts."""
    flags = []
    for f in options(type(config)):
        value = getattr(config, f.name)
        if f.name not in leave_out and value is not None and value is not False and not f.metadata["positional"]:
            flag = "--" + f.name.replace("_", "-")
            values = value if isinstance(value, list) else [value]  # a repeated flag for a list
            flags += [flag] if value is True else [text for v in values for text in (flag, str(v))]
    return flags


def check_options(config):
    """Check (and make integral floats ints in) every ``option`` field of ``config``, in place."""
    for f in fields(config):
        if "within" in f.metadata:
            kind = f.type if isinstance(f.type, type) else {"int": int, "float": float}.get(f.type)
            value = check_value(f.name, getattr(config, f.name), kind, f.metadata["within"], f.metadata["choices"],
                                optional=True)
            setattr(config, f.name, value)
