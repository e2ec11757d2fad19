"""A GPT training step, generation and memory: tinytransformer (NumPy, Numba) against PyTorch (CPU).

    .venv/bin/python benchmarks/bench_train.py                     # everything -> benchmarks/results/train.json
    .venv/bin/python benchmarks/bench_train.py --configs A --rounds 5 --skip generation memory startup allocator
    .venv/bin/python benchmarks/bench_train.py --threads 1         # one thread for BLAS, Numba and torch

Configurations (the GPT of tinytransformer.models and its twin TorchGPT, same weights):
A: vocab 65, 4 layers, 4 heads, width 128, block 64, batch 12; B: vocab 65, 6 layers, 6 heads,
width 384, block 256, batch 16. Sections:

- step: forward, backward and AdamW, after checking that all three start from the same loss.
  The three implementations run interleaved, one step each per round (the order alternating),
  so that a change in the machine's load hits all alike; medians and quartiles over the rounds.
- floor: the step's matrix products alone, each timed with np.matmul (OpenBLAS) at its own shape
  on the same threads: the time no implementation on this machine goes below (see ``matmul_floor``).
- generation: tokens per second from a one-token prompt, with and without our KV cache,
  against nanoGPT's cache-free loop in torch.
- memory: the peak resident memory of one training step, each implementation in its own
  process (VmHWM reset after a warm-up step through /proc/self/clear_refs).
- startup: Numba's compile time: a first process with an empty cache, then a second one.
- allocator: page faults and step time with glibc's default thresholds and with
  tinytransformer.tune_allocator(), in separate processes.

Every result file starts with the machine, load average, threads, library versions and the BLAS
kernel in use. benchmarks/report.py renders the tables and the plot.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Idle worker threads sleep instead of spinning, in torch's OpenMP pool and in OpenBLAS's (read when
# each library loads). With spinning workers on a 2-core machine the two libraries, interleaved, steal
# each other's cores; and on a busy machine OpenBLAS's default (spin 2^28 cycles) made a 2-thread step
# several times slower than a 1-thread one.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

import tinytransformer as tt  # noqa: E402
from tinytransformer.generation import generate  # noqa: E402
from tinytransformer.allocator import allocator_tuned, tune_allocator  # noqa: E402
from tinytransformer.kernels import backend_info, set_num_threads, use_backend  # noqa: E402
from tinytransformer.models import GPT, GPTConfig  # noqa: E402
from machine import cpu_model, write_result  # noqa: E402  (benchmarks/ is the script's folder)

RESULTS = Path(__file__).parent / "results"
CONFIGS = {
    "A": dict(model=dict(vocab_size=65, n_layer=4, n_head=4, n_embd=128, block_size=64), batch=12),
    "B": dict(model=dict(vocab_size=65, n_layer=6, n_head=6, n_embd=384, block_size=256), batch=16),
}
IMPLS = ("numpy", "numba", "torch")
SECTIONS = ("step", "floor", "generation", "memory", "startup", "allocator")


def build(name, impl):
    """A training step for one configuration and implementation -> (step function returning the loss, model)."""
    spec = CONFIGS[name]
    tt.manual_seed(0)
    model = GPT(GPTConfig(**spec["model"]))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, model.config.vocab_size, (spec["batch"], model.config.block_size))
    targets = rng.integers(0, model.config.vocab_size, idx.shape)
    if impl == "torch":
        import torch

        from tinytransformer.reference.torch_gpt import TorchGPT

        torch.set_num_threads(THREADS)
        twin = TorchGPT.from_config(model.config).load_numpy_state(model.state_dict())
        opt = torch.optim.AdamW(twin.parameters(), lr=3e-4, weight_decay=0.1)
        idx_t, targets_t = torch.from_numpy(idx), torch.from_numpy(targets)

        def step():
            opt.zero_grad()
            _, loss = twin(idx_t, targets_t)
            loss.backward()
            opt.step()
            return loss.item()
        return step, twin
    opt = tt.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)

    def step():
        with use_backend(impl):
            opt.zero_grad()
            _, loss = model(idx, targets)
            loss.backward()
            opt.step()
            return loss.item()
    return step, model


def summary(times):
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return {"median_ms": 1e3 * median, "q1_ms": 1e3 * q1, "q3_ms": 1e3 * q3, "min_ms": 1e3 * min(times), "n": len(times)}


def bench_step(name, rounds):
    steps = {impl: build(name, impl)[0] for impl in IMPLS}
    first = {impl: step() for impl, step in steps.items()}  # also the warm-up (and Numba's compile)
    if not np.allclose(list(first.values()), first["torch"], rtol=1e-5):
        raise AssertionError(f"bench_step {name}: the implementations start from different losses {first}")
    for step in steps.values():
        step()
    times = {impl: [] for impl in IMPLS}
    for r in range(rounds):
        for impl in IMPLS if r % 2 == 0 else IMPLS[::-1]:
            start = time.perf_counter()
            steps[impl]()
            times[impl].append(time.perf_counter() - start)
    result = {impl: summary(t) for impl, t in times.items()}
    med = {impl: result[impl]["median_ms"] for impl in IMPLS}
    result["first_loss"] = first
    result["ratios"] = {"numba/torch": med["numba"] / med["torch"], "numpy/torch": med["numpy"] / med["torch"],
                        "numpy/numba": med["numpy"] / med["numba"]}
    return result


def step_matmuls(name):
    """The matrix products of one training step of configuration ``name``: a list of (count, batch, m, k, n, share).

    Each Linear layer (rows N = batch x block, in -> out) does three products: forward x W^T
    (N, in) @ (in, out), and backward dX = dY W (N, out) @ (out, in) and dW = dY^T X (out, N) @ (N, in).
    Attention does six per layer, each (B * heads) products of T x T x head size: QK^T and PV
    forward; dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q backward. Under the causal mask only
    the lower half of each T x T product is needed: ``share`` 0.5 counts that half.
    """
    spec = CONFIGS[name]
    c = GPTConfig(**spec["model"])
    N, C, T = spec["batch"] * c.block_size, c.n_embd, c.block_size
    linears = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)]  # c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj
    shapes = []
    for n_in, n_out in linears:
        shapes += [(c.n_layer, 1, N, n_in, n_out, 1.0), (c.n_layer, 1, N, n_out, n_in, 1.0),
                   (c.n_layer, 1, n_out, N, n_in, 1.0)]
    V = c.vocab_size
    shapes += [(1, 1, N, C, V, 1.0), (1, 1, N, V, C, 1.0), (1, 1, V, N, C, 1.0)]  # lm_head
    hs, BH = C // c.n_head, spec["batch"] * c.n_head
    shapes += [(2 * c.n_layer, BH, T, hs, T, 0.5), (4 * c.n_layer, BH, T, T, hs, 0.5)]  # QK^T, dP; PV, dV, dQ, dK
    return shapes


def matmul_floor(name, repeats=5):
    """Seconds of matrix products in one training step of ``name``, each timed alone (median of ``repeats``).

    The floor of the step: its matrix products at the speed this machine's BLAS does
    them, on the same threads, with nothing else (no softmax, norm, GELU, optimizer,
    copies, Python). Returns the seconds, the FLOPs (2 m k n per product) and their rate.
    """
    rng = np.random.default_rng(0)
    seconds = flops = 0.0
    for count, batch, m, k, n, share in step_matmuls(name):
        a = rng.standard_normal((batch, m, k), dtype=np.float32)
        b = rng.standard_normal((batch, k, n), dtype=np.float32)
        out = np.empty((batch, m, n), np.float32)
        np.matmul(a, b, out=out)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            times.append(time.perf_counter() - start)
        seconds += count * share * float(np.median(times))
        flops += count * share * 2.0 * batch * m * k * n
    return {"seconds": seconds, "gflop": flops / 1e9, "gflop_per_s": flops / 1e9 / seconds}


def torch_generate(model, idx, max_new_tokens, block_size):
    """nanoGPT's generate: the whole (cropped) context through the model for every new token."""
    import torch

    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits, _ = model(idx[:, -block_size:])
            probs = torch.softmax(logits[:, -1, :], dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
    return idx


def bench_generation(name, new_tokens):
    import torch

    _, model = build(name, "numba")
    twin = build(name, "torch")[1].eval()
    block = model.config.block_size
    prompt = np.zeros((1, 1), dtype=np.int64)
    runs = {
        "numba_cache": lambda n: generate(model, prompt, n, seed=0, use_cache=True),
        "numpy_cache": lambda n: generate(model, prompt, n, seed=0, use_cache=True),
        "numba_no_cache": lambda n: generate(model, prompt, n, seed=0, use_cache=False),
        "torch_no_cache": lambda n: torch_generate(twin, torch.from_numpy(prompt), n, block),
    }
    result = {}
    for run_name, run in runs.items():
        with use_backend("numpy" if run_name.startswith("numpy") else "numba"):
            run(3)  # warm-up
            start = time.perf_counter()
            out = run(new_tokens)
            seconds = time.perf_counter() - start
        assert np.shape(out) == (1, 1 + new_tokens)
        result[run_name] = {"seconds": seconds, "tokens_per_s": new_tokens / seconds}
    tps = {k: v["tokens_per_s"] for k, v in result.items()}
    result["new_tokens"] = new_tokens
    result["cache_speedup"] = tps["numba_cache"] / tps["numba_no_cache"]
    result["ours_cache_over_torch_no_cache"] = tps["numba_cache"] / tps["torch_no_cache"]
    return result


def _status_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def worker_memory(name, impl):
    """(In a subprocess.) Resident memory before and at the peak of one training step, in MB."""
    step, _ = build(name, impl)
    step()  # warm-up: optimizer state, compiled kernels
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM, the peak resident set size
    before = _status_kb("VmRSS")
    step()
    peak = _status_kb("VmHWM")
    return {"before_mb": before / 1024, "peak_mb": peak / 1024, "step_mb": (peak - before) / 1024}


def worker_startup(name):
    """(In a subprocess.) Seconds to import, to run the first training step (compiling or loading Numba's cache), the second."""
    start = time.perf_counter()
    step, _ = build(name, "numba")
    built = time.perf_counter()
    step()
    first = time.perf_counter()
    step()
    return {"import_and_build_s": built - start, "first_step_s": first - built, "second_step_s": time.perf_counter() - first}


def worker_allocator(name, tuned, steps=5):
    """(In a subprocess.) Median step time and page faults per step, Numba backend."""
    if tuned:
        tune_allocator()
    step, _ = build(name, "numba")
    step()
    step()
    times, faults = [], []
    for _ in range(steps):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return {"median_ms": 1e3 * float(np.median(times)), "page_faults_per_step": int(np.median(faults))}


def in_subprocess(worker, *args, env=None):
    """Run ``worker(*args)`` in a fresh interpreter (same threads), return its JSON result."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_train as b; "
            f"b.set_threads({THREADS}); print(json.dumps(b.{worker}(*{args!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def set_threads(n):
    global THREADS
    THREADS = n
    set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


THREADS = os.cpu_count()


def header():
    import torch

    with use_backend("numba"):
        tt.kernels.gelu_forward(np.zeros(8, np.float32))  # launches Numba's threads: the info shows the layer
        info = backend_info()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(), "cpu": cpu_model(),
        "avx512": " avx512f " in flags, "cores": os.cpu_count(), "load_average_before": os.getloadavg(),
        "threads": THREADS, "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "numpy": np.__version__, "torch": torch.__version__, "tinytransformer": tt.__version__,
        "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"), "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "caller_environment": os.environ.get("TT_BENCH_CALLER_ENV", "(not run through make bench)"),
        **{f"tinytransformer_{k}": v for k, v in info.items()}, "tinytransformer_allocator_tuned": allocator_tuned(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="AB")
    parser.add_argument("--rounds", type=int, nargs=2, default=(15, 5), metavar=("A", "B"), help="rounds per configuration")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS)
    parser.add_argument("--no-tune-allocator", action="store_true", help="keep glibc's default malloc thresholds")
    parser.add_argument("--out", default=str(RESULTS / "train.json"))
    args = parser.parse_args()
    import torch  # noqa: F401 - loaded before the threads are set, so that set_threads reaches it

    if not args.no_tune_allocator:
        tune_allocator()
    set_threads(args.threads)
    result = {"header": header(), "configs": CONFIGS}
    print(json.dumps(result["header"], indent=1), flush=True)
    rounds = dict(zip("AB", args.rounds))
    for name in args.configs:
        if "step" not in args.skip:
            result.setdefault("step", {})[name] = r = bench_step(name, rounds[name])
            print(name, "step", {k: round(v["median_ms"], 1) for k, v in r.items() if k in IMPLS}, r["ratios"], flush=True)
        if "floor" not in args.skip:
            result.setdefault("floor", {})[name] = r = matmul_floor(name)
            if "step" in result:
                r["numba_step_over_floor"] = result["step"][name]["numba"]["median_ms"] / 1e3 / r["seconds"]
            print(name, "matmul floor", r, flush=True)
        if "generation" not in args.skip:
            result.setdefault("generation", {})[name] = r = bench_generation(name, args.new_tokens)
            print(name, "generation", {k: v for k, v in r.items()}, flush=True)
        if "memory" not in args.skip:
            result.setdefault("memory", {})[name] = r = {impl: in_subprocess("worker_memory", name, impl) for impl in IMPLS}
            print(name, "memory", r, flush=True)
        if "allocator" not in args.skip:
            result.setdefault("allocator", {})[name] = r = {
                "default": in_subprocess("worker_allocator", name, False),
                "tuned": in_subprocess("worker_allocator", name, True)}
            print(name, "allocator", r, flush=True)
    if "startup" not in args.skip:
        with tempfile.TemporaryDirectory() as cache:  # an empty Numba cache: the first process compiles
            env = {"NUMBA_CACHE_DIR": cache}
            result["startup"] = {"cold": in_subprocess("worker_startup", "A", env=env),
                                 "cached": in_subprocess("worker_startup", "A", env=env)}
        print("startup", result["startup"], flush=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
