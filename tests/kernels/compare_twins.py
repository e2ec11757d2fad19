"""Shared checks for the kernel tests: run a dispatcher on both backends and compare; finite differences."""

import numpy as np

from tinytransformer.kernels import jit, use_backend

DTYPES = [np.float32, np.float64]
# Numba against NumPy: the same math in another order of rounding (Numba sums in float64).
TOLERANCE = {np.dtype(np.float32): dict(rtol=1e-5, atol=2e-6), np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12)}


def on_both(fn, *args, **kwargs):
    """fn(*args, **kwargs) run with backend numpy, then numba: (numpy_result, numba_result).

    Array arguments are copied for each run, so kernels that work in place see the same inputs.
    Numba runs twice, on one thread and with its parallel build forced even on small arrays
    (``PARALLEL_MIN_SIZE = 0``); the two must agree, and the parallel result is returned.
    """
    def run(backend_name, parallel_min_size=jit.PARALLEL_MIN_SIZE):
        fresh = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        previous, jit.PARALLEL_MIN_SIZE = jit.PARALLEL_MIN_SIZE, parallel_min_size
        try:
            with use_backend(backend_name):
                return fn(*fresh, **kwargs)
        finally:
            jit.PARALLEL_MIN_SIZE = previous

    reference, serial, parallel = run("numpy"), run("numba", np.inf), run("numba", 0)
    for s, p in zip(_arrays(serial), _arrays(parallel)):
        np.testing.assert_allclose(p, s, **TOLERANCE[np.dtype(s.dtype)])
    return reference, parallel


def _arrays(result):
    """The arrays of a result that may be a tuple of arrays or of tuples, in order."""
    if isinstance(result, tuple):
        return [a for part in result for a in _arrays(part)]
    return [np.asarray(result)]


def assert_same(reference, fast, dtype):
    """Numba result equals the NumPy result within the dtype's tolerance, with the same dtype, no NaN."""
    reference = reference if isinstance(reference, tuple) else (reference,)
    fast = fast if isinstance(fast, tuple) else (fast,)
    assert len(reference) == len(fast)
    for r, f in zip(reference, fast):
        assert f.dtype == r.dtype == np.dtype(dtype), (f.dtype, r.dtype, dtype)
        assert f.shape == r.shape
        scale = max(1.0, float(np.max(np.abs(r[np.isfinite(r)]), initial=0.0)))
        tol = TOLERANCE[np.dtype(dtype)]
        np.testing.assert_allclose(f, r, rtol=tol["rtol"], atol=tol["atol"] * scale)


def assert_directional_derivatives(loss, x, grad, n_directions=3, eps=1e-6, rtol=1e-6, seed=0):
    """grad . v against (loss(x + eps v) - loss(x - eps v)) / (2 eps) along random directions v (float64)."""
    rng = np.random.default_rng(seed)
    for _ in range(n_directions):
        v = rng.standard_normal(x.shape)
        numeric = (loss(x + eps * v) - loss(x - eps * v)) / (2 * eps)
        analytic = float(np.sum(grad * v))
        assert abs(analytic - numeric) <= 1e-8 + rtol * abs(numeric), (analytic, numeric)
