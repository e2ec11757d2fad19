"""Which implementation the kernels run (NumPy or Numba), and how many threads they use.

Every kernel in this folder exists twice: a NumPy function that reads like the
math, and a Numba function of explicit loops that compiles to machine code.
The backend picks one for the whole library:

    tt.set_backend("numpy")           # the readable reference
    tt.set_backend("numba")           # compiled loops (the default when Numba is installed)
    TINYTRANSFORMER_BACKEND=numpy     # the same choice from the environment, read at import

Numba is imported lazily, on the first call of a Numba kernel (or on
``set_backend("numba")``), so ``import tinytransformer`` never imports it when
it is absent or when the environment forces NumPy.

Thread policy. Numba's parallel loops and the BLAS behind ``np.matmul``
(OpenBLAS here) each keep a pool of worker threads, and both let idle workers
spin, waiting for the next job, rather than sleep. A training step alternates
the two many times, so on a machine with few cores each pool's spinning
threads steal the cores the other pool needs: measured on 2 cores, a mix of
small Numba loops and matmuls ran 6-10x slower with Numba's OpenMP threading
layer than with its ``workqueue`` layer, whose workers sleep when idle
(``OMP_WAIT_POLICY=PASSIVE`` fixes it too). We therefore select ``workqueue``
in ``numba.config`` before Numba launches its threads, unless the user chose a
layer with ``NUMBA_THREADING_LAYER`` (workqueue runs one parallel loop at a
time: call the kernels from one Python thread). We do not set ``OMP_WAIT_POLICY``
ourselves: it is read once when the OpenMP runtime loads (often before we are
imported, e.g. by torch) and it would change other libraries in the process.
``set_num_threads(n)`` sets one thread count for both BLAS and Numba.
"""

import contextlib
import functools
import importlib.metadata
import importlib.util
import os
import sys
import types
import zlib

import numpy as np

from .allocator import allocator_tuned

BACKENDS = ("numpy", "numba")
ENV_VAR = "TINYTRANSFORMER_BACKEND"

_numba = None  # the numba module, once loaded
_num_threads = None  # set by set_num_threads, applied to Numba when it loads


def numba_installed() -> bool:
    """True when ``import numba`` would find the package (without importing it)."""
    if "numba" in sys.modules:
        return sys.modules["numba"] is not None
    return importlib.util.find_spec("numba") is not None


def load_numba():
    """Import Numba (once), choosing the threading layer before its threads start."""
    global _numba
    if _numba is None:
        try:
            import numba
        except ImportError as err:
            raise ImportError(
                "set_backend: the 'numba' backend needs Numba, which is not installed; "
                "pip install 'tinytransformer[fast]', or use set_backend('numpy')"
            ) from err
        if "NUMBA_THREADING_LAYER" not in os.environ:
            numba.config.THREADING_LAYER = "workqueue"  # idle workers sleep: see the module docstring
        _numba = numba
        if _num_threads is not None:
            _set_numba_threads(_num_threads)
    return _numba


def _initial_backend() -> str:
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if not name:
        return "numba" if numba_installed() else "numpy"
    if name not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: expected one of {BACKENDS}")
    if name == "numba" and not numba_installed():
        raise ImportError(f"{ENV_VAR}=numba, but Numba is not installed; pip install 'tinytransformer[fast]'")
    return name


_backend = _initial_backend()


def get_backend() -> str:
    """The backend the kernels run on now: ``"numpy"`` or ``"numba"``."""
    return _backend


def set_backend(name: str) -> None:
    """Run every kernel with ``"numpy"`` (reference) or ``"numba"`` (compiled) from now on."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"set_backend: name must be one of {BACKENDS}, got {name!r}")
    if name == "numba":
        load_numba()
    _backend = name


@contextlib.contextmanager
def use_backend(name: str):
    """``with use_backend("numpy"): ...`` runs the block on one backend, then restores the previous one."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


PARALLEL_MIN_SIZE = 1 << 16  # elements of a kernel's main array below which it runs on one thread


class NumbaKernel:
    """A Python function of explicit loops, compiled by ``numba.njit`` on its first call.

    Kernel files write ``prange`` for a loop whose iterations are independent;
    until Numba is loaded that name is Python's ``range``. Compiling swaps
    ``numba.prange`` into the kernel's module, and compiles the other
    ``NumbaKernel`` functions the kernel calls (scalar helpers such as
    ``vector_math.exp``), swapping them in the same way. A parallel kernel
    is compiled twice, with and without threads (see ``__call__``). ``cache=True``
    stores the machine code in ``__pycache__``, so later processes skip the
    compile. ``error_model="numpy"``: a float division by zero gives inf or NaN,
    as in NumPy, instead of raising ZeroDivisionError; Python's check is a
    branch in every division, and that branch alone keeps LLVM from turning a
    loop into SIMD instructions (measured: a loop with one division ran 9x
    faster without it).
    """

    def __init__(self, py_func, parallel, fastmath):
        functools.update_wrapper(self, py_func)
        self.py_func, self.parallel, self.fastmath = py_func, parallel, fastmath
        self.compiled = {}  # parallel (True or False) -> the compiled function

    def compile(self, parallel=False):
        if parallel not in self.compiled:
            numba = load_numba()
            names = self.py_func.__globals__
            names["prange"] = numba.prange
            for name in self.py_func.__code__.co_names:  # the globals this function uses
                if isinstance(names.get(name), NumbaKernel) and names[name] is not self:
                    names[name] = names[name].compile()
            options = dict(parallel=parallel, fastmath=self.fastmath, error_model="numpy")
            # Numba's cache tells compilations apart by function name and signature, not by options: a
            # name of its own for each set of options, or the serial build is served as the parallel one.
            func = types.FunctionType(self.py_func.__code__, names, self.py_func.__name__)
            fastmath = sorted(self.fastmath) if isinstance(self.fastmath, set) else self.fastmath  # a stable order
            func.__qualname__ = f"{self.py_func.__qualname__}_{zlib.crc32(repr((parallel, fastmath)).encode()):08x}"
            self.compiled[parallel] = numba.njit(cache=True, **options)(func)
        return self.compiled[parallel]

    def __call__(self, *args):
        """Run the kernel; in parallel only when there are threads to share it and enough work for them.

        Starting a parallel loop costs tens of microseconds (measured: 50 us
        on a busy 2-core machine, against 1 us for the same loop compiled
        serially), more than small arrays take. ``args[0]`` is the kernel's
        main array, and its size stands for the work.
        """
        parallel = (self.parallel and np.size(args[0]) >= PARALLEL_MIN_SIZE
                    and load_numba().get_num_threads() > 1)
        return self.compile(parallel)(*args)


def numba_kernel(parallel=False, fastmath=False):
    """Decorator: ``@numba_kernel(parallel=True)`` marks a loop kernel for lazy compilation."""
    return lambda py_func: NumbaKernel(py_func, parallel, fastmath)


BLOCK = 1 << 17  # elements per block for in_blocks: 512 KiB of float32, inside a core's L2 cache


def in_blocks(fn, *arrays):
    """``fn(*arrays)`` for an elementwise ``fn``, computed BLOCK elements at a time into one result.

    A NumPy expression like ``x * (1 + erf(x))`` makes a temporary array per
    operation; on a whole (4096, 1536) activation each one streams 25 MB
    through main memory. On blocks of 128K elements the temporaries stay in the
    cache (measured: GELU's forward and backward 2.7x faster). ``arrays`` share
    one shape; the result is a new array of that shape and the first's dtype.
    """
    flat = [np.ascontiguousarray(a).reshape(-1) for a in arrays]  # (n,) views when already contiguous
    out = np.empty_like(flat[0])
    for start in range(0, out.size, BLOCK):
        block = slice(start, start + BLOCK)
        out[block] = fn(*(a[block] for a in flat))
    return out.reshape(np.shape(arrays[0]))


# Reassociating sums (so that a dot product vectorises) and fusing multiply-adds only
# reorders rounding; unlike fastmath=True it keeps inf and NaN semantics, which the
# masked (-inf) scores of attention rely on.
REASSOCIATE = {"reassoc", "contract", "nsz"}


def _set_numba_threads(n):
    limit = _numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise ValueError(f"set_num_threads: n={n} exceeds Numba's pool of {limit} threads (NUMBA_NUM_THREADS)")
    _numba.set_num_threads(n)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in both BLAS (through threadpoolctl) and Numba's parallel loops."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as err:
        raise ImportError(
            "set_num_threads: setting BLAS threads needs threadpoolctl (pip install threadpoolctl); "
            "or set OMP_NUM_THREADS before starting Python"
        ) from err
    if _numba is not None:
        _set_numba_threads(n)
    threadpool_limits(limits=n, user_api="blas")
    _num_threads = n


def backend_info() -> dict:
    """What the kernels run on, for benchmarks to print: backend, Numba, threads, BLAS."""
    numba = _numba
    if numba is None and _backend == "numba":
        numba = load_numba()
    try:
        numba_version = importlib.metadata.version("numba") if numba_installed() else None
    except importlib.metadata.PackageNotFoundError:
        numba_version = None
    layer = None
    if numba is not None:
        try:
            layer = numba.threading_layer()  # the layer actually running
        except ValueError:  # no parallel loop has run yet: report the one chosen
            layer = f"{numba.config.THREADING_LAYER} (not launched yet)"
    try:
        from threadpoolctl import threadpool_info

        blas = [
            {key: pool.get(key) for key in ("internal_api", "version", "num_threads", "threading_layer", "architecture")}
            for pool in threadpool_info() if pool.get("user_api") == "blas"
        ]
    except ImportError:
        blas = None
    return {
        "backend": _backend,
        "numba": numba_version,
        "threading_layer": layer,
        "numba_num_threads": numba.get_num_threads() if numba is not None else None,
        "blas": blas,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "allocator_tuned": allocator_tuned(),
        "cpu_count": os.cpu_count(),
    }
