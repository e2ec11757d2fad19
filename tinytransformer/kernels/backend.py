"""Which twin the kernels run (NumPy or Numba), and how many threads they use.

Every kernel in this folder exists twice: a NumPy function that reads like the
math, and a Numba function of explicit loops that compiles to machine code.
The backend picks one for the whole library:

    tt.set_backend("numpy")           # the readable reference
    tt.set_backend("numba")           # compiled loops (the default when Numba is installed)
    TINYTRANSFORMER_BACKEND=numpy     # the same choice from the environment, read at import

Numba is optional: where it is not installed, ``numba`` below is None, the
backend is "numpy", and ``set_backend("numba")`` says how to install it.

Thread policy. Numba's parallel loops and the BLAS behind ``np.matmul``
(OpenBLAS here) each keep a pool of worker threads, and both let idle workers
spin, waiting for the next job, rather than sleep. A training step alternates
the two many times, so on a machine with few cores each pool's spinning
threads steal the cores the other pool needs: measured on 2 cores, a mix of
small Numba loops and matmuls ran 6-10x slower with Numba's OpenMP threading
layer than with its ``workqueue`` layer, whose workers sleep when idle
(``OMP_WAIT_POLICY=PASSIVE`` fixes it too). We therefore select ``workqueue``
right after importing Numba, before it launches its threads, unless the user
chose a layer with ``NUMBA_THREADING_LAYER`` (workqueue runs one parallel loop
at a time: call the kernels from one Python thread). We do not set
``OMP_WAIT_POLICY`` ourselves: it is read once when the OpenMP runtime loads
(often before we are imported, e.g. by torch) and it would change other
libraries in the process. ``set_num_threads(n)`` sets one thread count for
both BLAS and Numba.
"""

import contextlib
import os

try:
    import numba
except ImportError:  # Numba is optional: without it every kernel runs its NumPy twin
    numba = None
else:
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"  # idle workers sleep: see the module docstring

BACKENDS = ("numpy", "numba")
ENV_VAR = "TINYTRANSFORMER_BACKEND"
INSTALL_HINT = "pip install 'tinytransformer[fast]'"


def _initial_backend() -> str:
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if not name:
        return "numpy" if numba is None else "numba"
    if name not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: expected one of {BACKENDS}")
    if name == "numba" and numba is None:
        raise ImportError(f"{ENV_VAR}=numba, but Numba is not installed; {INSTALL_HINT}")
    return name


_backend = None  # read from the environment on first use, so that a bad value is an error there, not at import


def get_backend() -> str:
    """The backend the kernels run on now: ``"numpy"`` or ``"numba"``."""
    global _backend
    if _backend is None:
        _backend = _initial_backend()
    return _backend


def set_backend(name: str) -> None:
    """Run every kernel with ``"numpy"`` (reference) or ``"numba"`` (compiled) from now on."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"set_backend: name must be one of {BACKENDS}, got {name!r}")
    if name == "numba" and numba is None:
        raise ImportError(
            f"set_backend: the 'numba' backend needs Numba, which is not installed; {INSTALL_HINT}, "
            "or use set_backend('numpy')"
        )
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


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in both BLAS (through threadpoolctl) and Numba's parallel loops."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as err:
        raise ImportError(
            "set_num_threads: setting BLAS threads needs threadpoolctl (pip install threadpoolctl); "
            "or set OMP_NUM_THREADS before starting Python"
        ) from err
    if numba is not None:
        limit = numba.config.NUMBA_NUM_THREADS
        if n > limit:
            raise ValueError(f"set_num_threads: n={n} exceeds Numba's pool of {limit} threads (NUMBA_NUM_THREADS)")
        numba.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")


_blas_pools = None  # threadpoolctl's handles on the loaded BLAS libraries, found on first use


def _blas_controllers():
    global _blas_pools
    if _blas_pools is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # without threadpoolctl the BLAS keeps its own thread count
            _blas_pools = []
        else:
            _blas_pools = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas_pools


@contextlib.contextmanager
def one_blas_thread():
    """``with one_blas_thread(): ...`` runs the block's matrix products on one BLAS thread, then restores the count.

    For a stack of small products (``np.matmul`` over many 64-row matrices):
    OpenBLAS splits each product above 64 x 64 x 64 among its threads and
    hands the halves out and back once per matrix, which costs more than the
    second thread saves. Measured at GPT config B's causal attention (96
    products of 64 x 64 x 64..256 per call, forward + backward, 2 threads):
    85-100 ms with OpenBLAS threading each product, 66-77 ms on one BLAS thread,
    as on one thread overall (52-70 ms). The count is global to the process:
    products in other Python threads meanwhile run on one thread too.
    """
    saved = [(pool, pool.num_threads) for pool in _blas_controllers()]
    for pool, _ in saved:
        pool.set_num_threads(1)  # a C call, about 1 us
    try:
        yield
    finally:
        for pool, n in saved:
            pool.set_num_threads(n)


def backend_info() -> dict:
    """What the kernels run on, for benchmarks to print: backend, Numba, threads, BLAS."""
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
        "numba": None if numba is None else numba.__version__,
        "threading_layer": layer,
        "numba_num_threads": None if numba is None else numba.get_num_threads(),
        "blas": blas,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "cpu_count": os.cpu_count(),
    }
