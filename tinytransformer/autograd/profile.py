"""Where the time of a forward and backward goes, op by op: a clock around every Function.

    totals = {}
    with time_per_op(totals):
        loss = model(x, y)[1]; loss.backward()
    # totals == {"LinearFunction.forward": 0.012, "LinearFunction.backward": 0.021, ...} (CPU seconds)

Every op of the library is a ``Function`` subclass with a ``forward`` and a
``backward`` (see function.py), so wrapping those two methods of every subclass
in a timer sees all the numerical work; what is left of a step's time is Python
between the ops and whatever is not a Function (the optimizer). The clock is
``time.process_time`` (CPU time of the process, all its threads), so a machine
shared with other jobs does not inflate it, but a BLAS thread spinning idle does:
profile on one thread (``tt.kernels.set_num_threads(1)``).
"""

import contextlib
import time

from .function import Function


def all_functions(cls=Function):
    """Every subclass of ``cls``, however deep."""
    for sub in cls.__subclasses__():
        yield sub
        yield from all_functions(sub)


@contextlib.contextmanager
def time_per_op(totals: dict, clock=time.process_time):
    """Add the seconds of every Function's forward and backward into ``totals["Name.forward"]`` etc.

    The methods are restored when the block ends, even if it raises. Nested
    ops (a Function that calls another inside its forward) count in both.
    """
    classes = set(all_functions())
    # Look up every original first, then wrap: once a base class is wrapped, getattr on a subclass that
    # inherits the method would return the base's wrapper (timing the call under the base's name, and a
    # classmethod bound to the base instead of the subclass).
    originals = {(cls, method): getattr(cls, method) for cls in classes for method in ("forward", "backward")}
    saved = [(cls, method, cls.__dict__.get(method)) for cls, method in originals]
    for (cls, method), original in originals.items():

        def timed(*args, _original=original, _key=f"{cls.__name__}.{method}", **kwargs):
            start = clock()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_key] = totals.get(_key, 0.0) + clock() - start

        setattr(cls, method, staticmethod(timed))
    try:
        yield totals
    finally:
        for cls, method, descriptor in saved:
            if descriptor is None:
                delattr(cls, method)
            else:
                setattr(cls, method, descriptor)
