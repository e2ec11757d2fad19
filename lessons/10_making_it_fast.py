# %% [markdown]
# # 10 · Making it fast: profiling, fused kernels, Numba
#
# Everything so far was written to be read. This lesson asks where a training step
# spends its time, and what can be done about the parts that are slow without making
# the code unreadable. Four ideas, each measured:
#
# 1. **Profile first.** In a GPT step most of the time is matrix multiplication, which
#    NumPy hands to BLAS, already as fast as the machine allows. The rest is many small
#    passes over memory, and Python's overhead between them.
# 2. **Fuse.** An op built from primitives (LayerNorm from mean, subtract, square, ...)
#    makes a temporary array and a graph node per primitive. A *fused* op is one
#    `Function` whose forward and backward are each one pass, derived by hand.
# 3. **Compile the loops.** The fused kernels live in `tinytransformer/kernels/`, each
#    twice: a NumPy function that reads like the math, and a Numba function of explicit
#    loops compiled to machine code. `tt.set_backend("numpy" | "numba")` picks one.
# 4. **Mind the memory.** Flash attention never stores the (T, T) attention matrix, so
#    its memory grows linearly with the context; and large temporaries that go back to
#    the operating system after every step cost a page fault each time they come back.

# %%
import inspect
import resource
import time
import tracemalloc
from pathlib import Path

import course
import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps
from flash_attention import blas_attention_forward, flash_attention_forward  # lessons/flash_attention.py

import tinytransformer as tt
from tinytransformer import kernels
from tinytransformer.autograd.profile import time_per_op
from tinytransformer.autograd.tensor import topological_order
from tinytransformer.kernels.gelu import gelu_forward_numba, gelu_forward_numpy
from tinytransformer.kernels.layernorm import layer_norm_backward_numpy
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.nn import functional as F

# %% [markdown]
# ## 1 · Where does a training step spend its time?
#
# The model is the benchmarks' configuration A: 4 layers of width 128, 4 heads, a
# context of 64 characters, batches of 12. To see the time per op, we wrap every
# `Function`'s `forward` and `backward` in a clock for the duration of a few steps
# (`tinytransformer.autograd.profile.time_per_op`, a page of code).
# (`python -m cProfile -s tottime train.py` gives the same picture per Python function.)

# %%
kernels.set_num_threads(1)  # one thread for BLAS and Numba: CPU time then counts work, not waiting threads
config = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
batch = 12
rng = np.random.default_rng(0)
idx = rng.integers(0, config.vocab_size, (batch, config.block_size))
targets = rng.integers(0, config.vocab_size, idx.shape)


def make_step(model):
    opt = tt.optim.AdamW(model.parameters(), lr=3e-4)

    def step():
        opt.zero_grad()
        _, loss = model(idx, targets)
        loss.backward()
        opt.step()
        return loss.item()
    return step


tt.manual_seed(0)
step = make_step(GPT(config))
step()  # the first step compiles the Numba kernels (or loads them from the cache)
n_profiled = steps(10, 3)
totals = {}
with time_per_op(totals):
    start = time.process_time()
    for _ in range(n_profiled):
        step()
    step_seconds = (time.process_time() - start) / n_profiled
per_step = {name: seconds / n_profiled for name, seconds in totals.items()}
top = sorted(per_step.items(), key=lambda kv: -kv[1])[:12]
for name, seconds in top:
    print(f"{name:38s} {1e3 * seconds:7.2f} ms  {100 * seconds / step_seconds:5.1f} %")
linear = per_step["LinearFunction.forward"] + per_step["LinearFunction.backward"]
print(f"step {1e3 * step_seconds:.1f} ms, of which Linear layers (matrix products) {100 * linear / step_seconds:.0f} %")

# %% [markdown]
# On a quiet machine the matrix products of the Linear layers come first (times vary
# with the machine and its load, so the lesson prints them and asserts only what
# counting shows). Counting their work: a Linear layer with `n` weights costs `2 n`
# floating-point operations per token forward and `4 n` backward (one product for the
# input's gradient, one for the weight's), so a step costs `6 n_linear N` for `N`
# tokens. Attention's own products (the scores `q k^T` and the weighted sum of the
# values, `2 T C` each per token and layer, forward) are the only other matrix work.

# %%
n_linear = sum(p.size for name, p in GPT(config).named_parameters() if name.endswith("weight") and p.ndim == 2
               and not name.endswith(("wte.weight", "wpe.weight")))
n_linear += config.vocab_size * config.n_embd  # lm_head shares wte's matrix but is a product too
flop = 6 * n_linear * batch * config.block_size
attention_flop = 3 * config.n_layer * 2 * (2 * config.block_size * config.n_embd) * batch * config.block_size
print(f"{flop / 1e9:.2f} GFLOP per step in Linear layers ({flop / (flop + attention_flop):.0%} of the matrix work), "
      f"{attention_flop / 1e9:.2f} in attention's products; {flop / linear / 1e9:.0f} GFLOP/s achieved in Linear layers")
assert flop > 0.75 * (flop + attention_flop)  # the Linear layers hold most of the arithmetic, on any machine

fig, ax = plt.subplots(figsize=(8, 4.5))
names = [name for name, _ in top][::-1]
ax.barh(names, [1e3 * per_step[name] for name in names], color=["C1" if "Linear" in n else "C0" for n in names])
ax.set_xlabel(f"ms per training step (CPU time, backend {tt.get_backend()})")
ax.set_title("Where a GPT training step spends its time (configuration A)")
fig.tight_layout()
fig.savefig(figure_path("10_profile.png"), dpi=110)

# %% [markdown]
# ## 2 · What a fused kernel is
#
# LayerNorm written with autograd primitives (`layer_norm_composed`) is about ten graph
# nodes, each with its own temporary array and its own backward. The fused
# `F.layer_norm` is one `Function` (`nn/normalization.py`) whose backward calls one
# kernel: the hand-derived formula `dx = rstd (g - mean(g) - xhat mean(g xhat))`, with
# `g = weight * dL/dy`. Its NumPy twin (`kernels/layernorm.py`) is that line:

# %%
print(inspect.getsource(layer_norm_backward_numpy))

# %%
x = tt.Tensor(rng.standard_normal((batch * config.block_size, config.n_embd)).astype(np.float32), requires_grad=True)
w = tt.Tensor(np.ones(config.n_embd, np.float32), requires_grad=True)
b = tt.Tensor(np.zeros(config.n_embd, np.float32), requires_grad=True)


REPEATS = steps(20, 5)


def best_of(fn, repeats=REPEATS):
    """The fastest of several runs (CPU time): the least disturbed by other programs."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


layer_norms = {"composed": F.layer_norm_composed, "fused": F.layer_norm}
nodes, seconds = {}, {}
for name, fn in layer_norms.items():
    nodes[name] = len(topological_order(fn(x, config.n_embd, w, b)))
    seconds[name] = best_of(lambda fn=fn: fn(x, config.n_embd, w, b).sum().backward())
    print(f"{name:9s} {nodes[name]:3d} graph nodes, forward + backward {1e3 * seconds[name]:.2f} ms")
np.testing.assert_allclose(F.layer_norm(x, 128, w, b).data, F.layer_norm_composed(x, 128, w, b).data, atol=2e-5)
assert nodes["fused"] == 4 and nodes["composed"] >= 10  # x, w, b and one LayerNorm node, against eleven

# %% [markdown]
# ## 3 · The NumPy twin and the Numba twin
#
# Every kernel is written twice. GELU, `x Phi(x)` with `Phi(x) = (1 + erf(x / sqrt 2)) / 2`,
# in NumPy is the formula itself:

# %%
print(inspect.getsource(gelu_forward_numpy))

# %% [markdown]
# and in Numba a loop, one element at a time, that Numba compiles (`@numba_kernel` and
# `prange` come from `kernels/jit.py`; with `prange`, the iterations are shared among
# threads):

# %%
print(inspect.getsource(gelu_forward_numba.py_func))

# %% [markdown]
# Two details made the loop fast. Numba calls the C library's `erf` and `exp` one value
# at a time, a call the compiler cannot turn into SIMD instructions (8 or 16 floats per
# instruction); `kernels/vector_math.py` writes them with multiplications and one
# division only. And Python semantics check every division for zero (to raise
# `ZeroDivisionError`): that branch alone blocked SIMD, so the kernels compile with
# `error_model="numpy"`. The NumPy twin makes a temporary array per operation; run on
# blocks of 128K elements (`in_blocks` in `kernels/gelu.py`, what the NumPy backend
# runs) its temporaries stay in the CPU's cache.

# %%
h = rng.standard_normal((batch * config.block_size * 8, 4 * config.n_embd)).astype(np.float32)
gelu_times = {"NumPy, whole array": best_of(lambda: gelu_forward_numpy(h, "none"))}
with kernels.use_backend("numpy"):
    gelu_times["NumPy, in blocks"] = best_of(lambda: kernels.gelu_forward(h))
    y_numpy = kernels.gelu_forward(h)
with kernels.use_backend("numba"):
    gelu_times["Numba"] = best_of(lambda: kernels.gelu_forward(h))
    y_numba = kernels.gelu_forward(h)
for name, t in gelu_times.items():
    print(f"GELU forward on {h.shape}, {name:20s} {1e3 * t:7.2f} ms ({gelu_times['NumPy, whole array'] / t:.1f}x)")
np.testing.assert_allclose(y_numba, y_numpy, rtol=1e-5, atol=2e-6)  # the twins agree

# %% [markdown]
# ## 4 · Flash attention: memory that grows linearly
#
# Attention's plain form builds the (T, T) matrix of scores and keeps the
# probabilities for the backward pass: memory quadratic in the context length.
# Flash attention (Dao et al. 2022) walks over the keys in tiles. For each query it
# keeps a running maximum `m`, a running denominator `l` and a running weighted sum of
# values; when a new tile raises the maximum from `m` to `m'`, what was accumulated is
# rescaled by `e^(m - m')` (the *online softmax*). The output is exact, and only O(T)
# numbers per head are kept: the output and `lse = m + log l` for the backward, which
# recomputes the probabilities tile by tile. Nothing in the library runs it, so it
# lives beside this lesson, in `lessons/flash_attention.py` (NumPy and Numba twins,
# and the plain form for comparison). We measure the peak memory NumPy allocates
# (`tracemalloc`) for one forward pass of each.

# %%
lengths = [128, 256, 512] if SHORT else [256, 512, 1024, 2048]
peak = {"plain (BLAS + softmax)": [], "flash (tiled)": []}
with kernels.use_backend("numpy"):
    for T in lengths:
        q, k, v = (rng.standard_normal((1, 2, T, 32)).astype(np.float32) for _ in range(3))
        for name, fn in [("plain (BLAS + softmax)", blas_attention_forward), ("flash (tiled)", flash_attention_forward)]:
            tracemalloc.start()
            out, saved = fn(q, k, v, is_causal=True)
            peak[name].append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        plain_out, flash_out = blas_attention_forward(q, k, v)[0], flash_attention_forward(q, k, v)[0]
        np.testing.assert_allclose(flash_out, plain_out, rtol=1e-4, atol=1e-5)  # the same attention
for name, mib in peak.items():
    print(f"{name:24s}", "  ".join(f"T={T}: {m:6.2f} MiB" for T, m in zip(lengths, mib)))
growth = {name: mib[-1] / mib[-2] for name, mib in peak.items()}
assert growth["plain (BLAS + softmax)"] > 3.0 and growth["flash (tiled)"] < 2.5, growth  # x4 against x2 per doubling

fig, ax = plt.subplots(figsize=(6, 4))
for name, mib in peak.items():
    ax.plot(lengths, mib, "o-", label=name)
ax.set_xscale("log", base=2)
ax.set_yscale("log", base=2)
ax.set_xlabel("context length T")
ax.set_ylabel("peak memory of the forward (MiB)")
ax.set_title("Attention memory: quadratic vs linear")
ax.legend()
fig.tight_layout()
fig.savefig(figure_path("10_attention_memory.png"), dpi=110)

# %% [markdown]
# Yet the training step uses the plain form (BLAS products with a fused, in-place
# softmax between them): on 2 cores, BLAS's matrix products beat hand-written tile
# loops, and at a context of 256 the (T, T) matrix is small. It borrows one idea from
# flash attention: the forward keeps only `lse` per query, not the probabilities, and
# the backward recomputes them from Q and K (one more matrix product, `F.scaled_dot_product_attention`
# in `nn/attention.py`), so no (T, T) matrix per layer waits in memory for the backward.
# Flash attention pays fully when T is long enough that even one such matrix does not fit.
#
# ## 5 · Page faults: memory that goes back and comes back
#
# A step makes and frees the same large temporaries every time. By default glibc's
# `malloc` returns big freed blocks to the operating system; the next step asks for
# them again, and every first touch of a fresh page is a *page fault* the kernel must
# serve. `tt.tune_allocator()` (opt-in: it changes `malloc` for the whole process;
# `tinytransformer/allocator.py`) raises glibc's thresholds so the memory stays and
# is reused.

# %%
FAULT_STEPS = steps(5, 3)


def faults_and_seconds(n=FAULT_STEPS):
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
    for _ in range(n):
        step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n, (time.process_time() - start) / n


default = faults_and_seconds()
tuned = tt.tune_allocator() and faults_and_seconds()
if tuned:  # glibc only
    print(f"page faults per step: {default[0]:.0f} by default, {tuned[0]:.0f} tuned; "
          f"step {1e3 * default[1]:.1f} ms -> {1e3 * tuned[1]:.1f} ms")
    assert tuned[0] < default[0] / 10

# %% [markdown]
# ## 6 · The measured speed-ups
#
# The same step on each backend, and PyTorch's twin of the model from the same
# weights when PyTorch is installed (the steps interleaved, the median kept, one
# thread each). The backend changes the speed, not the result: both backends give
# the same loss.

# %%
losses = {}
for name in ("numpy", "numba"):
    with kernels.use_backend(name):
        tt.manual_seed(0)
        losses[name] = make_step(GPT(config))()
assert abs(losses["numpy"] - losses["numba"]) < 1e-5 * abs(losses["numpy"]), losses
try:
    import torch

    from tinytransformer.reference.torch_gpt import TorchGPT
except ImportError:
    torch = None


def torch_step_fn():
    torch.set_num_threads(1)
    tt.manual_seed(0)
    twin = TorchGPT.from_config(config).load_numpy_state(GPT(config).state_dict())
    opt = torch.optim.AdamW(twin.parameters(), lr=3e-4)
    x, y = torch.from_numpy(idx), torch.from_numpy(targets)

    def step():
        opt.zero_grad()
        _, loss = twin(x, y)
        loss.backward()
        opt.step()
    return step


step_fns = {}
for name in ("numpy", "numba"):
    tt.manual_seed(0)
    step_fns[name] = (name, make_step(GPT(config)))
if torch is not None:
    step_fns["torch"] = (None, torch_step_fn())
times = {name: [] for name in step_fns}
for _ in range(steps(7, 3)):
    for name, (backend, fn) in step_fns.items():
        with kernels.use_backend(backend or tt.get_backend()):
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
median = {name: float(np.median(t)) for name, t in times.items()}
print({name: f"{1e3 * t:.1f} ms" for name, t in median.items()})

bench_file = Path(course.__file__).resolve().parent.parent / "benchmarks" / "results" / "train.json"
fig, ax = plt.subplots(figsize=(7, 4))
ax.bar(list(median), [1e3 * t for t in median.values()], color=["C0", "C1", "C2"][: len(median)])
ax.set_ylabel("ms per training step (CPU time, median)")
ax.set_title("Configuration A, measured in this lesson")
if bench_file.exists():  # `make bench` measured both configurations more carefully
    import json

    bench = json.loads(bench_file.read_text())["step"]
    notes = [f"{c}: Numba/torch {s['ratios']['numba/torch']:.2f}, NumPy/torch {s['ratios']['numpy/torch']:.2f}"
             for c, s in bench.items()]
    ax.text(0.02, 0.95, "make bench (wall clock):\n" + "\n".join(notes), transform=ax.transAxes, va="top", fontsize=8)
fig.tight_layout()
fig.savefig(figure_path("10_speedups.png"), dpi=110)

# %% [markdown]
# `make bench` runs the careful version (both configurations, wall clock, generation,
# memory, compile time) and writes `benchmarks/results/`; README shows the table.
# What remains is the matrix products: at this size they are most of the step in every
# library, so the best we can do is not to add much around them.

# %% [markdown]
# ## What you can do now
#
# - Profile a training step op by op, and count the FLOPs that explain the profile.
# - Fuse an op into one `Function` with a hand-derived backward, and measure the graph
#   nodes and time it saves.
# - Read a NumPy kernel beside its Numba twin, and check that the two agree.
# - Explain what flash attention and a tuned allocator save: memory and page faults.
