"""Compiling a kernel's loops with Numba: ``numba_kernel`` and ``prange``.

A kernel file writes its Numba twin as a plain Python function of explicit
loops and decorates it:

    from .jit import REASSOCIATE, numba_kernel, prange

    @numba_kernel(parallel=True, fastmath=REASSOCIATE)
    def gelu_forward_numba(x, use_tanh, exact):
        y = np.empty_like(x)
        for i in prange(x.size):        # independent iterations, shared among threads
            ...

``numba_kernel`` returns ``numba.njit(...)(fn)``: a function that Numba
compiles to machine code on its first call, once per set of argument types.
Kernels call one another the same way (``vector_math.exp`` inside a loop is
compiled into that loop). Two cases leave the Python function as it is:
Numba not installed (then ``prange`` is Python's ``range``, and the library
runs the NumPy twins), and ``NUMBA_DISABLE_JIT=1`` (``numba.njit`` returns
``fn`` itself, so the loops run as Python, step by step in a debugger).

The options every kernel compiles with:

- ``cache=True``: the machine code is stored in ``__pycache__``, so later
  processes load it instead of compiling again (seconds per kernel).
- ``error_model="numpy"``: a float division by zero gives inf or NaN, as in
  NumPy, instead of raising ZeroDivisionError. Python's check is a branch in
  every division, and that branch alone keeps LLVM from turning a loop into
  SIMD instructions (measured: a loop with one division ran 9x faster
  without it).
- ``fastmath``: False, or ``REASSOCIATE`` below.
"""

import functools
import types

import numpy as np

from .backend import numba

# The loop whose iterations Numba may share among threads; run as Python (JIT off), numba.prange is range.
prange = range if numba is None else numba.prange

# Reassociating sums (so that a dot product vectorises) and fusing multiply-adds only
# reorders rounding; unlike fastmath=True it keeps inf and NaN semantics, which the
# masked (-inf) scores of attention rely on.
REASSOCIATE = {"reassoc", "contract", "nsz"}

PARALLEL_MIN_SIZE = 1 << 16  # elements of a kernel's main array below which it runs on one thread


def numba_kernel(parallel=False, fastmath=False):
    """Decorator: compile a loop function with Numba (see the module docstring).

    ``parallel=True`` lets ``prange`` share a loop among threads; such a kernel
    is compiled twice (see ``ParallelKernel``) and cannot be called from inside
    another kernel.
    """
    def decorate(fn):
        if numba is None:
            return fn
        options = dict(cache=True, error_model="numpy", fastmath=fastmath)
        if parallel:
            return ParallelKernel(fn, options)
        return numba.njit(**options)(fn)
    return decorate


class ParallelKernel:
    """One loop function compiled twice: with threads for large arrays, without for small ones.

    Starting a parallel loop costs tens of microseconds (measured: 50 us on a
    busy 2-core machine, against 1 us for the same loop compiled serially),
    more than small arrays take. ``args[0]`` is the kernel's main array, and
    its size stands for the work.
    """

    def __init__(self, fn, options):
        functools.update_wrapper(self, fn)
        self.py_func = fn
        self.threaded = numba.njit(parallel=True, **options)(fn)
        self.one_thread = numba.njit(**options)(_renamed(fn, "_one_thread"))

    def __call__(self, *args):
        if np.size(args[0]) >= PARALLEL_MIN_SIZE and numba.get_num_threads() > 1:
            return self.threaded(*args)
        return self.one_thread(*args)


def _renamed(fn, suffix):
    """``fn`` under the name ``fn.__qualname__ + suffix`` (the same code and globals).

    Numba names its cache files after the function (module, name, line) and
    tells entries apart by argument types only, not by compile options: under
    one name, a process would load the one-thread build from the cache as the
    threaded one, or the reverse. So the second build gets a name of its own.
    """
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + suffix
    return copy
