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


def check_options(config):
    """Check (and make integral floats ints in) every ``option`` field of ``config``, in place."""
    for f in fields(config):
        if "within" in f.metadata:
            kind = f.type if isinstance(f.type, type) else {"int": int, "float": float}.get(f.type)
            value = check_value(f.name, getattr(config, f.name), kind, f.metadata["within"], f.metadata["choices"],
                                optional=True)
            setattr(config, f.name, value)
