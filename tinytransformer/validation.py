"""Hyper-parameters checked where they are given: one meaning of "a valid number" for the whole package.

Constructors (optimizers, schedules, layers, model and training configs), every
``load_state_dict`` that restores hyper-parameters, and the command line check
the numbers they are given with ``check_value``, so that a bad one fails at once,
named, instead of as a NaN checkpoint or a NumPy error three layers down:

    >>> check_value("Adam: lr", float("inf"), float, "[0, inf)")
    ValueError: Adam: lr must be finite, got inf

The rules:

- a number must be finite, and a real number (not a bool, not a string);
- where an integer is meant (``kind=int``), an integral float such as 8.0 (from
  JSON, or from arithmetic) is accepted and returned as the int 8; 8.5 is refused;
- ``within`` is an interval written as in mathematics, ``"[1, inf)"`` or ``"(0, 1]"``:
  a square bracket includes its bound, a round one excludes it;
- ``choices``, when given, lists the allowed values;
- ``None`` is refused unless ``optional=True`` (a setting "decided by another one").
"""

import math
import numbers


def check_value(name, value, kind=float, within=None, choices=None, *, optional=False):
    """``value`` if it is a ``kind`` (int or float; else any) inside ``within`` and among ``choices``.

    Returns the value as a Python number of that kind (8.0 -> 8 for an int); a
    list or tuple has each of its values checked. Anything else raises a
    ValueError that starts with ``name``: "{name} must be ..., got {value!r}".
    """
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name} must be given, got None")
    if isinstance(value, (list, tuple)):  # a setting that takes several values: each one checked
        return type(value)(check_value(name, v, kind, within, choices, optional=optional) for v in value)
    if choices is not None and value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    if kind in (int, float):
        value = _number(name, value, kind)
    if within is not None and not _inside(value, within):
        raise ValueError(f"{name} must be in {within}, got {value!r}")
    return value


def _number(name, value, kind):
    """``value`` as a finite Python int or float, or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value) if kind is int else float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if kind is int:
        if not float(value).is_integer():
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(value)
    return float(value)


def _inside(value, interval):
    """Whether ``value`` lies in ``interval``, a string such as "[0, 1)" or "(0, inf)"."""
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    above_low = value >= low if interval[0] == "[" else value > low
    below_high = value <= high if interval[-1] == "]" else value < high
    return above_low and below_high


def check_fields(obj, specs, where=None):
    """``check_value`` on attributes of ``obj`` (a config), each replaced by its checked value.

    ``specs`` maps an attribute's name to ``(kind, within)``; messages start with
    ``where`` (default: the class's name), e.g. "GPTConfig: n_layer must be in [1, inf), got 0".
    """
    where = where or type(obj).__name__
    for name, (kind, within) in specs.items():
        setattr(obj, name, check_value(f"{where}: {name}", getattr(obj, name), kind, within))
