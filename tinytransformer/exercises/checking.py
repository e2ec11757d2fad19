"""How an exercise is checked: load the learner's file, run each check, say what is wrong in one line.

A lesson's checks (``lessonNN_*.py`` beside this file) are a list of
``Check(name, function)``: ``function`` receives the learner's function of that
name and raises ``ExerciseFailure`` with a message when an answer is wrong. It
compares the answer with the library on random float64 inputs of several shapes
(odd ones included: a scalar, a size-1 axis, a batch axis), and a backward pass
also with central differences (``tinytransformer.gradcheck``). The helpers here
word the failures the same way everywhere:

    expect_shape      "dL/db has shape (4, 5), expected (2, 4, 5), for a (2, 3, 4) and b (4, 5)"
    expect_close      the worst element, its index, the value given and the value expected
    expect_equal      for masks and ids: how many elements differ, and the first
    expect_gradcheck  gradcheck's own report: the element, analytic against numeric

``run_checks`` runs every check of a file and never lets a learner's error
escape: a ``NotImplementedError`` is "not written yet", any other exception is
named with the line of the learner's file that raised it.
"""

import importlib.util
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..autograd import Function, Tensor
from ..gradcheck import GradcheckError, gradcheck

MAX_MESSAGE = 300  # characters of an exception's message that a result line quotes


class ExerciseFailure(AssertionError):
    """An answer that is wrong, with the one line that says how."""


@dataclass
class Check:
    """One exercise: the name of the learner's function, and the function that checks it."""

    name: str
    check: object  # check(learner_function) -> None, or raises ExerciseFailure


@dataclass
class Result:
    """What a check found: ``status`` is "pass", "todo" (not written yet) or "fail"; ``message`` says why."""

    name: str
    status: str
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def line(self) -> str:
        label = {"pass": "PASS", "todo": "TODO", "fail": "FAIL"}[self.status]
        return f"  {label}  {self.name}" + (f": {self.message}" if self.message else "")


def load_exercises(path):
    """The learner's file as a module, loaded from its path (it need not be on ``sys.path``).

    A file that does not load (a syntax error, an import that fails) raises a
    ValueError naming the file and its line: the learner can fix that.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    spec = importlib.util.spec_from_file_location(f"exercises_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise ValueError(f"{path} does not load: {_describe_exception(err, path)}") from None
    return module


def run_checks(module, checks, path=None) -> list:
    """A ``Result`` per check, in order, for the functions of ``module`` (loaded from ``path``)."""
    results = []
    for c in checks:
        function = getattr(module, c.name, None)
        if not callable(function):
            results.append(Result(c.name, "fail", f"the file has no function named {c.name}"))
            continue
        try:
            c.check(function)
        except NotImplementedError:
            results.append(Result(c.name, "todo", "not written yet"))
        except ExerciseFailure as err:
            results.append(Result(c.name, "fail", str(err)))
        except Exception as err:
            results.append(Result(c.name, "fail", _describe_exception(err, path)))
        else:
            results.append(Result(c.name, "pass"))
    return results


def _describe_exception(err, path) -> str:
    """ "raised IndexError: ... (exercises/01_autograd.py, line 42)": the learner's last line in the traceback."""
    message, where = str(err), ""
    if isinstance(err, SyntaxError):  # its str() names a file and line already; say the line once
        message, where = err.msg or "invalid syntax", f" (line {err.lineno})" if err.lineno else ""
    elif path is not None:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == Path(path)]
        if frames:
            where = f" ({path}, line {frames[-1].lineno})"
    message = " ".join(message.split()) or "no message"
    if len(message) > MAX_MESSAGE:  # one readable line, even for NumPy's long ones
        message = message[:MAX_MESSAGE] + "..."
    return f"raised {type(err).__name__}: {message}{where}"


# ------------------------------------------------------------------ comparisons
def shapes(**arrays) -> str:
    """ "for a (4, 3) and b (3,)": the inputs of a case, to end a message with."""
    parts = [f"{name} {np.shape(a)}" for name, a in arrays.items()]
    return "for " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0])


def as_result(what, got, case):
    """``got`` as an array, or a failure saying what came back instead."""
    if got is None:
        raise ExerciseFailure(f"{what} is None (did the function forget to return it?), {case}")
    if isinstance(got, Tensor):
        got = got.data
    try:
        return np.asarray(got)
    except Exception:
        raise ExerciseFailure(f"{what} is a {type(got).__name__}, not an array, {case}") from None


def unpack(got, n, what, case) -> tuple:
    """The ``n`` values of a returned tuple, or a failure saying how many came back."""
    if not isinstance(got, (tuple, list)) or len(got) != n:
        count = len(got) if isinstance(got, (tuple, list)) else f"a {type(got).__name__}"
        raise ExerciseFailure(f"expected a tuple of {n} ({what}), got {count}, {case}")
    return tuple(got)


def expect_shape(what, got, shape, case):
    got = as_result(what, got, case)
    if got.shape != tuple(shape):
        raise ExerciseFailure(f"{what} has shape {got.shape}, expected {tuple(shape)}, {case}")
    return got


def expect_close(what, got, expected, case, atol=1e-9, rtol=1e-7, source="the library's"):
    """Fail unless ``got`` matches ``expected`` in shape and, elementwise, within atol + rtol * |expected|."""
    expected = np.asarray(expected, dtype=np.float64)
    got = expect_shape(what, got, expected.shape, case)
    if got.dtype.kind not in "biuf":
        raise ExerciseFailure(f"{what} has dtype {got.dtype}, expected numbers, {case}")
    got = got.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf
        error = np.where((got == expected) & np.isinf(expected), 0.0, np.abs(got - expected))  # -inf as meant: 0
    error = np.where(np.isnan(error), np.inf, error)  # a NaN is as wrong as can be
    badness = error / (atol + rtol * np.where(np.isinf(expected), 0.0, np.abs(expected)))
    if not (badness > 1).any():
        return
    worst = np.unravel_index(int(np.argmax(badness)), badness.shape)
    index = tuple(int(i) for i in worst) if badness.ndim else ()
    count = int((badness > 1).sum())
    raise ExerciseFailure(
        f"{what} is wrong at index {index}: got {got[worst]:.6g}, expected {expected[worst]:.6g} ({source}); "
        f"{count} of {got.size} elements are off, {case}"
    )


def expect_equal(what, got, expected, case, source="the library's"):
    """Fail unless ``got`` equals ``expected`` exactly (masks, ids): the count of differences and the first."""
    expected = np.asarray(expected)
    got = expect_shape(what, got, expected.shape, case)
    if expected.dtype == np.bool_ and got.dtype != np.bool_:
        raise ExerciseFailure(f"{what} has dtype {got.dtype}, expected bool (True/False), {case}")
    differ = got != expected
    if not differ.any():
        return
    first = tuple(int(i) for i in np.argwhere(differ)[0])
    raise ExerciseFailure(
        f"{what} differs at {int(differ.sum())} of {got.size} elements, first at index {first}: "
        f"got {got[first]}, expected {expected[first]} ({source}), {case}"
    )


def expect_gradcheck(fn, inputs, case):
    """Central differences against the backward pass of ``fn(*inputs)`` (float64 tensors), or a failure."""
    try:
        gradcheck(fn, inputs)
    except GradcheckError as err:
        raise ExerciseFailure(f"central differences disagree: {err}, {case}") from None


def with_backward(forward, backward):
    """A ``Function`` whose forward is the library's arithmetic and whose backward is the learner's.

    ``forward(*arrays)`` returns ``(output, saved)``; the learner's
    ``backward(grad, *saved)`` returns one gradient per differentiable input
    (a tuple when there are several). Used with ``expect_gradcheck``.
    """

    class LearnersBackward(Function):
        @staticmethod
        def forward(ctx, *arrays):
            out, ctx.saved = forward(*arrays)
            return out

        @staticmethod
        def backward(ctx, grad):
            grads = backward(grad.copy(), *(a.copy() for a in ctx.saved))  # copies: no edit reaches the graph
            grads = grads if isinstance(grads, tuple) else (grads,)
            return tuple(None if g is None else np.asarray(g, dtype=np.float64) for g in grads)

    return LearnersBackward.apply

