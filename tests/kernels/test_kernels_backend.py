import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import threadpoolctl

import tinytransformer as tt
from tinytransformer.kernels import backend, backend_info, set_num_threads, use_backend

LESSONS = Path(__file__).resolve().parents[2] / "lessons"


def _python(code, **env):
    """Run ``code`` in a fresh interpreter with extra environment variables; return (returncode, output)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("TINYTRANSFORMER_BACKEND", "NUMBA_DISABLE_JIT")}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**environ, **env},
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_set_and_get_backend():
    previous = tt.get_backend()
    try:
        tt.set_backend("numpy")
        assert tt.get_backend() == "numpy"
        tt.set_backend("numba")
        assert tt.get_backend() == "numba"
    finally:
        tt.set_backend(previous)
    with pytest.raises(ValueError, match=r"set_backend: name must be one of \('numpy', 'numba'\), got 'cuda'"):
        tt.set_backend("cuda")


def test_use_backend_restores_after_an_error():
    previous = tt.get_backend()
    with pytest.raises(RuntimeError), use_backend("numpy" if previous == "numba" else "numba"):
        assert tt.get_backend() != previous
        raise RuntimeError
    assert tt.get_backend() == previous


def test_missing_numba_gives_a_clear_error(monkeypatch):
    monkeypatch.setattr(backend, "numba", None)  # what backend.py holds where Numba is not installed
    previous = tt.get_backend()
    with pytest.raises(ImportError, match=r"the 'numba' backend needs Numba, which is not installed"):
        tt.set_backend("numba")
    assert tt.get_backend() == previous


def test_environment_variable_selects_the_backend():
    probe = """
        import numpy as np, tinytransformer as tt
        from tinytransformer.kernels import layer_norm_forward
        layer_norm_forward(np.ones((2, 3)))
        print(tt.get_backend())
    """
    code, out = _python(probe, TINYTRANSFORMER_BACKEND="numpy")
    assert code == 0 and out.split() == ["numpy"], out
    code, out = _python(probe)  # default: Numba when installed
    assert code == 0 and out.split() == ["numba"], out
    code, out = _python("import tinytransformer as tt; tt.get_backend()", TINYTRANSFORMER_BACKEND="fortran")
    assert code != 0 and "TINYTRANSFORMER_BACKEND='fortran': expected one of ('numpy', 'numba')" in out


def test_without_numba_the_library_works_on_numpy():
    code, out = _python("""
        import sys
        sys.modules["numba"] = None   # as if Numba were not installed
        import numpy as np, tinytransformer as tt
        from tinytransformer.kernels import gelu_forward
        print(tt.get_backend(), gelu_forward(np.zeros(3)).sum())
        try:
            tt.set_backend("numba")
        except ImportError as err:
            print("ImportError:", err)
    """)
    assert code == 0 and out.startswith("numpy 0.0"), out
    assert "ImportError: set_backend: the 'numba' backend needs Numba, which is not installed" in out
    code, out = _python("import sys; sys.modules['numba'] = None; import tinytransformer as tt; tt.get_backend()",
                        TINYTRANSFORMER_BACKEND="numba")
    assert code != 0 and "TINYTRANSFORMER_BACKEND=numba, but Numba is not installed" in out


def test_kernels_run_as_python_with_numba_jit_disabled():
    code, out = _python(f"""
        import sys
        import numpy as np
        from tinytransformer import kernels as K
        sys.path.insert(0, {str(LESSONS)!r})
        import flash_attention as A
        rng = np.random.default_rng(0)
        x, g = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
        q, k, v, do = (rng.standard_normal((1, 2, 9, 3)) for _ in range(4))
        target = np.array([0, 6, -100, 3, 1])

        def run():
            y, mean, rstd = K.layer_norm_forward(x, np.ones(7), np.zeros(7))
            loss, lse = K.cross_entropy_forward(x, target, label_smoothing=0.1)
            p, m, s = x.copy(), np.zeros_like(x), np.zeros_like(x)
            K.adamw_update(p, g, m, s, 1, 1e-3, 0.9, 0.99, 1e-8, 0.1)
            o, lse_a = A.flash_attention_forward(q, k, v)
            ob, probs = A.blas_attention_forward(q, k, v)
            return [y, *K.layer_norm_backward(g, x, np.ones(7), mean, rstd), K.gelu_forward(x, "tanh"),
                    K.gelu_backward(g, x), loss, K.cross_entropy_backward(1.0, x, target, lse, label_smoothing=0.1),
                    K.embedding_backward(g, target.clip(0), 7), p, m, s, o, *A.flash_attention_backward(do, q, k, v, o, lse_a),
                    ob, *A.blas_attention_backward(do, q, k, v, probs)]

        with K.use_backend("numba"):
            fast = run()
        with K.use_backend("numpy"):
            ref = run()
        for a, b in zip(fast, ref):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        print("ok", len(fast))
    """, NUMBA_DISABLE_JIT="1")
    assert code == 0 and out.split() == ["ok", "20"], out


def test_a_parallel_kernel_has_two_builds_under_two_names():
    """Numba's cache tells builds apart by name and argument types, not options: each build needs its own name."""
    import numba

    from tinytransformer.kernels import gelu, jit

    if numba.config.DISABLE_JIT:
        pytest.skip("NUMBA_DISABLE_JIT=1: numba.njit returns the Python function, nothing is compiled")
    kernel = gelu.gelu_forward_numba
    assert isinstance(kernel, jit.ParallelKernel) and jit.prange is numba.prange
    assert kernel.threaded.targetoptions["parallel"] and "parallel" not in kernel.one_thread.targetoptions
    assert kernel.threaded.py_func is kernel.py_func
    assert kernel.one_thread.py_func.__qualname__ == "gelu_forward_numba_one_thread"
    assert kernel.one_thread.py_func.__code__ is kernel.py_func.__code__


def test_threading_layer_is_workqueue():
    code, out = _python("""
        import numpy as np, numba
        from tinytransformer.kernels import gelu_forward, backend_info
        gelu_forward(np.zeros(1 << 17))   # large enough to run a parallel loop
        print(numba.threading_layer(), backend_info()["threading_layer"])
    """, TINYTRANSFORMER_BACKEND="numba")
    assert code == 0 and out.split() == ["workqueue", "workqueue"], out


def test_set_num_threads_sets_blas_and_numba():
    import numba

    blas = lambda: {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}
    before_blas, before_numba = max(blas()), numba.get_num_threads()
    try:
        set_num_threads(1)
        assert blas() == {1} and numba.get_num_threads() == 1
        assert backend_info()["numba_num_threads"] == 1
    finally:
        set_num_threads(before_numba)
        threadpoolctl.threadpool_limits(before_blas, user_api="blas")
    with pytest.raises(ValueError, match="set_num_threads: n must be a positive int, got 0"):
        set_num_threads(0)
    with pytest.raises(ValueError, match="exceeds Numba's pool"):
        set_num_threads(numba.config.NUMBA_NUM_THREADS + 1)


def test_backend_info_describes_the_setup():
    with use_backend("numba"):
        info = backend_info()
    assert info["backend"] == "numba" and info["numba"] and info["numba"][0].isdigit()
    assert set(info) >= {"threading_layer", "numba_num_threads", "blas", "openblas_coretype"}
    assert info["blas"] and all(pool["num_threads"] >= 1 for pool in info["blas"])
    with use_backend("numpy"):
        assert backend_info()["backend"] == "numpy"
    assert np.ones(1).dtype  # numpy still importable after the info calls


def test_one_blas_thread_sets_one_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="one_blas_thread sets threads through threadpoolctl")
    from tinytransformer.kernels.backend import one_blas_thread

    def blas_threads():
        return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        with one_blas_thread():
            assert set(blas_threads()) == {1}
        assert blas_threads() == before
        with pytest.raises(RuntimeError), one_blas_thread():  # restored on an error too
            raise RuntimeError("inside")
        assert blas_threads() == before
