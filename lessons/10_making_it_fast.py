# %% [markdown]
# # 10 · Making it fast: profiling, fused kernels, Numba
#
# Everything so far was written to be read. This lesson asks where a training step
# spends its time, and what can be done about the parts that are slow without making
# the code unreadable. Five ideas, each measured:
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
# 5. **Use the second core, and know the floor.** Threads split each large product;
#    processes (data parallelism over MPI) split the batch and pay an all-reduce of the
#    gradients. Neither goes below the time of the step's matrix products alone.

# %%
import importlib.util
import inspect
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict
from pathlib import Path

import course
import matplotlib.pyplot as plt
import numpy as np
from course import SHORT, figure_path, steps
from flash_attention import blas_attention_forward, flash_attention_forward  # lessons/flash_attention.py
from threadpoolctl import threadpool_limits  # what kernels.set_num_threads uses for BLAS

import tinytransformer as tt
from tinytransformer import kernels
from tinytransformer.autograd.profile import time_per_op
from tinytransformer.autograd.tensor import topological_order
from tinytransformer.kernels.gelu import gelu_forward_numba, gelu_forward_numpy
from tinytransformer.kernels.layernorm import layer_norm_backward_numpy
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.nn import functional as F
from tinytransformer.training.distributed import find_mpiexec

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
# A second idea it borrows for causal attention: past 64 queries the sequence is cut into
# block rows, each multiplied against the keys up to its diagonal only, so the masked half
# is never computed (0.625 of the products at T = 256; 0.72-0.86x the time at config B,
# `kernels/causal_attention.py`).
#
# ## 5 · Page faults: memory that goes back and comes back
#
# A step makes and frees the same large temporaries every time. By default glibc's
# `malloc` returns big freed blocks to the operating system; the next step asks for
# them again, and every first touch of a fresh page is a *page fault* the kernel must
# serve. `tt.tune_allocator()` (opt-in: it changes `malloc` for the whole process;
# `tinytransformer/allocator.py`) raises glibc's thresholds so the memory stays and
# is reused. (glibc also raises its threshold by itself, up to 32 MiB, whenever it sees
# a block above it freed: a process that once freed a large array faults less by default,
# as this one does at full length, after section 4's 2048 x 2048 attention matrices.
# Tuned, it faults a handful of times per step from the first.)

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
    assert tuned[0] < 100  # a handful: the same pages serve every step, whatever the process did before

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
# ## 7 · Two cores: threads or processes
#
# A laptop has several cores, and everything above ran on one. There are two ways to
# give a training step a second core:
#
# - **Threads**: one process, and each large operation cut in two. BLAS splits a matrix
#   product's output into blocks and gives half to each thread; Numba's `prange` loops
#   share their iterations. Everything else (Python, the graph, the optimizer's loop over
#   parameters) stays on one thread.
# - **Processes** (*data parallelism*): N copies of the whole program, MPI *ranks*, each
#   doing the whole step on B/N rows of the batch, then averaging their gradients
#   (`tinytransformer/training/distributed.py`, `docs/parallel.md`). All of the step is
#   shared, the Python included, at the price of one exchange of gradients per step.
#
# ### Threads: work per hand-off
#
# A product `(m, k) @ (k, n)` costs `2 m k n` floating-point operations. On two threads
# each does half, and then they meet: the second thread has to be woken and the first
# waits for the slower half. That *hand-off* costs microseconds, a fixed price per
# product, so a second thread pays only when half the work takes much longer. A Linear
# layer of configuration A (`mlp.c_fc`: 768 token rows, 128 -> 512) is 0.1 GFLOP, about
# a millisecond; one token of generation through the same layer is 1/768 of that. BLAS
# knows it and runs small products on one thread whatever it is allowed (Numba's kernels
# do the same below `jit.PARALLEL_MIN_SIZE` elements). The clock is the wall clock here:
# CPU time would add up both threads' work.

# %%
def wall_per_call(fn, calls, repeats=REPEATS):
    """Wall-clock seconds per call, the best of ``repeats`` runs of ``calls`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


w_fc = rng.standard_normal((config.n_embd, 4 * config.n_embd)).astype(np.float32)  # (C, 4C), a Linear's W^T
products = {"training (768 rows)": rng.standard_normal((batch * config.block_size, config.n_embd)),  # (B*T, C)
            "generation (1 row)": rng.standard_normal((1, config.n_embd))}                          # (1, C)
thread_times = {}
for name, a in products.items():
    a = a.astype(np.float32)
    calls = max(1, int(2e7 // (2 * a.size * w_fc.shape[1])))  # about 20 MFLOP per timing
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            thread_times[name, threads] = wall_per_call(lambda a=a: a @ w_fc, calls)
    flops = 2 * a.size * w_fc.shape[1]
    print(f"{name:20s} {a.shape} @ {w_fc.shape}: {flops / 1e6:6.2f} MFLOP, 1 thread "
          f"{1e6 * thread_times[name, 1]:8.1f} us, 2 threads {1e6 * thread_times[name, 2]:8.1f} us "
          f"(x{thread_times[name, 1] / thread_times[name, 2]:.2f})")
kernels.set_num_threads(1)

# %% [markdown]
# On a quiet machine the large product runs nearly twice as fast on two threads and the
# one-row product not at all faster. On a machine that other programs keep busy, the
# second thread can *lose*: it shares its core with a neighbour, runs at half speed, and
# the first waits for it at every hand-off. (`kernels/threads.py` measured a 2-thread
# training run beside one busy process at 2.2x its time alone; its `AdaptiveThreads`,
# the default of `train`, therefore uses only the cores other programs leave idle.)
#
# ### Processes: the same gradient, from half the rows each
#
# The loss is a mean over the batch's B rows (over its B T tokens), `L = (1/B) sum_i l_i`.
# Rank r of N keeps rows `[r B/N, (r+1) B/N)` and computes the gradient of *its* mean,
# `g_r = grad (N/B) sum_{i in r} l_i`. The mean of the ranks' gradients is then
#
#     (1/N) sum_r g_r = (1/N)(N/B) sum_i grad l_i = grad L,
#
# the whole batch's gradient, exactly (in float32 up to rounding, since the sums are taken
# in another order). Every rank starts from the same weights, so the same averaged
# gradient and the same AdamW step keep them the same: N ranks train the model one
# process trains. Checked here on a small GPT in float64:

# %%
tt.manual_seed(0)
small = GPT(GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32)).double()
rows = 4
x_small = rng.integers(0, 65, (rows, 16))  # (B, T)
y_small = rng.integers(0, 65, (rows, 16))


def gradients(share):
    """The gradient of the mean loss over the rows ``share`` of the batch, one array per parameter."""
    small.zero_grad()
    _, loss = small(x_small[share], y_small[share])
    loss.backward()
    return [p.grad.copy() for p in small.parameters()]


whole = gradients(slice(0, rows))
halves = [gradients(slice(r * rows // 2, (r + 1) * rows // 2)) for r in range(2)]  # rank 0's rows, rank 1's
worst = max(np.abs((g0 + g1) / 2 - g).max() / np.abs(g).max() for g, g0, g1 in zip(whole, *halves))
print(f"mean of two half-batch gradients vs the whole batch's: largest difference {worst:.1e} of the gradient's scale")
for g, g0, g1 in zip(whole, *halves):
    np.testing.assert_allclose((g0 + g1) / 2, g, rtol=1e-9, atol=1e-12 * np.abs(g).max())

# %% [markdown]
# ### What all-reduce costs
#
# The averaging is one collective operation, *all-reduce*: every rank ends with the sum of
# every rank's gradient buffer (`World.average_gradients` divides by N). In the ring
# algorithm the buffer of S bytes is cut into N chunks; in N - 1 steps each rank passes a
# chunk to its neighbour and adds the one it receives, then in N - 1 more steps the summed
# chunks travel round. Each rank sends `2 (N - 1)/N x S` bytes: S for two ranks, never
# more than 2 S. With float32 gradients `S = 4 P` for P parameters, while the step
# computes about `6 P` FLOPs per token (section 1: `2 P` forward, `4 P` backward), on
# `B T / N` tokens per rank:
#
#     FLOPs per byte sent = 6 P (B T / N) / (8 P (N - 1) / N) = 0.75 B T / (N - 1)
#
# P cancels: the tokens per step decide whether communication matters, not the model's
# size. At the arithmetic rate measured in section 1, and, for two machines, over ordinary
# 1 Gbit/s Ethernet:

# %%
configs = {"A": (config, batch),  # the lesson's: 4 layers of 128, 12 x 64 tokens
           "B": (GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384), 16)}
rate = flop / linear  # FLOP/s reached in the Linear layers, section 1
ranks = 2
compute_seconds = {}
for name, (c, b) in configs.items():
    n_params = sum(p.size for p in GPT(c).parameters())
    sent = 4 * n_params * 2 * (ranks - 1) / ranks   # bytes each rank sends
    compute = 6 * n_params * b * c.block_size / ranks  # FLOPs each rank does
    compute_seconds[name] = compute / rate
    print(f"config {name}: {n_params / 1e6:5.2f} M parameters, {sent / 2**20:5.1f} MiB sent and "
          f"{compute / 1e9:5.2f} GFLOP per rank per step = {compute / sent:5.0f} FLOP/byte; "
          f"computed in {1e3 * compute_seconds[name]:6.1f} ms, sent in {1e3 * sent / 125e6:6.1f} ms at 1 Gbit/s")
    assert abs(compute / sent - 0.75 * b * c.block_size / (ranks - 1)) < 1e-6 * compute / sent

# %% [markdown]
# Between two machines on such a link, configuration A's exchange would cost more than
# its computing; larger batches (more tokens per byte) and overlapping the exchange with
# backward (what PyTorch's DDP does) are the cure. Two processes on one machine exchange
# through shared memory, much faster. With the mpi extra installed, two ranks here time
# `World.average_gradients` on configuration A's gradients (and B's, at full length):

# %%
try:
    MPIEXEC = find_mpiexec() if importlib.util.find_spec("mpi4py") else None
except ImportError:
    MPIEXEC = None
if MPIEXEC is None:
    print("the mpi extra is missing, so nothing runs on two ranks below: pip install 'tinytransformer[mpi]'")
# The processes started below get their threads from `--threads`, not from this one's thread variables, and run
# outside any MPI launcher this lesson may itself run under.
child_env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MPI_LOCAL", "HYDRA_"))
             and k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
ALLREDUCE = """
import json, sys
import numpy as np
from mpi4py import MPI
from tinytransformer.models.gpt import GPT, GPTConfig
from tinytransformer.training.distributed import World

world, timed = World(MPI.COMM_WORLD), {}
for name, spec in json.loads(sys.argv[1]).items():
    params = list(GPT(GPTConfig(**spec)).parameters())
    for p in params:
        p.grad = np.full(p.data.shape, world.rank + 1.0, np.float32)  # rank 0 holds ones, rank 1 twos
    seconds = []
    for _ in range(int(sys.argv[2])):
        world.comm.Barrier()
        before = world.reduce_seconds
        world.average_gradients(params)
        seconds.append(world.reduce_seconds - before)
    assert all((p.grad == 1.5).all() for p in params)  # the mean of 1 and 2 on both ranks
    timed[name] = (sum(p.grad.nbytes for p in params), float(np.median(seconds)))
if world.is_root:
    print(json.dumps(timed))
"""
if MPIEXEC is not None:
    specs = {name: asdict(c) for name, (c, _) in configs.items() if name == "A" or not SHORT}
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", ALLREDUCE, json.dumps(specs), str(steps(20, 5))],
                          env=child_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for name, (nbytes, seconds) in json.loads(done.stdout.splitlines()[-1]).items():
        print(f"config {name}: all-reduce of {nbytes / 2**20:.1f} MiB of gradients on 2 ranks, "
              f"{1e3 * seconds:.2f} ms ({nbytes / seconds / 1e9:.1f} GB/s), "
              f"{seconds / compute_seconds[name]:.0%} of the time its arithmetic takes (above)")

# %% [markdown]
# ### The measured scaling: one process, two threads, two ranks
#
# Now whole training runs, as a user starts them: `tinytransformer train` on the built-in
# corpus with the lesson's model, once in one process on one thread, once on two threads
# (`--threads 2`, at full length only), and once as two ranks of one thread each (`--nproc 2`, which starts
# `mpiexec -n 2 python -m tinytransformer train ...`). What each way divides differs.
# Two ranks divide the *rows*: each runs the whole step (every op, every line of Python)
# on half the batch, then adds an all-reduce; the per-op overhead, which does not depend
# on the rows, is paid in full on both. Two threads divide only the large operations
# (the matrix products, the larger Numba loops) and pay a hand-off for each; the rest
# runs on one core. The runs share the seed and see the same batches, and without
# dropout the two-rank run is the one-process run, so their losses must agree (to float32
# rounding, as `tests/training/test_distributed.py` checks).

# %%
if SHORT:
    model_flags = ["--n-layer=2", "--n-head=2", "--n-embd=64", "--block-size=32", "--batch-size=8"]
else:  # configuration A
    model_flags = ["--n-layer=4", "--n-head=4", "--n-embd=128", "--block-size=64", "--batch-size=12"]
train_steps = steps(60, 15)
train_flags = ["--data=pydoc", *model_flags, f"--max-iters={train_steps}", f"--eval-interval={train_steps}",
               "--eval-iters=2", "--warmup-iters=5", "--dropout=0"]
ways = {"1 process, 1 thread": ["--threads=1"]}
if not SHORT:  # the products on two threads were measured above; in short mode the run is left out
    ways["1 process, 2 threads"] = ["--threads=2"]
if MPIEXEC is not None:
    ways["2 ranks, 1 thread each"] = ["--threads=1", "--nproc=2"]
runs = {}
with tempfile.TemporaryDirectory() as folder:
    for name, flags in ways.items():
        out = Path(folder) / name.replace(" ", "_").replace(",", "")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "tinytransformer", "train", *train_flags, *flags, f"--out={out}"],
                              env=child_env, capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - start
        assert done.returncode == 0, done.stdout + done.stderr
        tokens_per_s = float(re.search(r"\(([\d,]+) tokens/s\)", done.stdout).group(1).replace(",", ""))
        history = json.loads((out / "meta.json").read_text())["history"]
        runs[name] = dict(wall=wall, tokens_per_s=tokens_per_s, loss=history["train_loss"][-1])
one = runs["1 process, 1 thread"]
for name, run in runs.items():
    print(f"{name:24s} {run['tokens_per_s']:8,.0f} tokens/s in training (x{run['tokens_per_s'] / one['tokens_per_s']:.2f}), "
          f"{run['wall']:5.1f} s for the whole command, final train loss {run['loss']:.6f}")
if "2 ranks, 1 thread each" in runs:
    np.testing.assert_allclose(runs["2 ranks, 1 thread each"]["loss"], one["loss"], rtol=1e-5)  # the same model

# %% [markdown]
# The tokens per second count the training loop alone; the whole command's time adds what
# neither way divides: starting Python, importing the library, reading the corpus, and for
# two ranks starting MPI. Neither way reaches 2x: two ranks each pay the per-op overhead
# in full and then the all-reduce; two threads leave all but the large operations on one
# core and pay a hand-off per product. And both need the second core to be free. On a
# busy machine (a shared server, a CI runner, a laptop running a browser) either can be
# slower than one thread, as the threads were in the first measurement if this machine
# was busy when it ran.
#
# ### The matmul floor
#
# Whatever the implementation, a training step must do its matrix products: three per
# Linear layer (forward `x W^T`, backward `dY W` and `dY^T x`) and six per attention layer
# (`q k^T` and `P v` forward, four backward, each on `B x heads` matrices of T x T x head
# size, only the causal half needed). Timing each alone, at the speed this machine's BLAS
# reaches on one thread, and adding them up gives the *floor*: the time of the step if
# everything else (softmax, LayerNorm, GELU, AdamW, copies, Python) cost nothing.

# %%
def step_products(c, b):
    """Every matrix product of a training step: (count, batch, m, k, n, share), ``share`` the part computed."""
    N, C, T = b * c.block_size, c.n_embd, c.block_size
    shapes = []
    for n_in, n_out in [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)]:  # c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj
        shapes += [(c.n_layer, 1, N, n_in, n_out, 1.0),   # forward   x W^T: (N, in) @ (in, out)
                   (c.n_layer, 1, N, n_out, n_in, 1.0),   # backward dY W:   (N, out) @ (out, in)
                   (c.n_layer, 1, n_out, N, n_in, 1.0)]   # backward dY^T x: (out, N) @ (N, in)
    V = c.vocab_size
    shapes += [(1, 1, N, C, V, 1.0), (1, 1, N, V, C, 1.0), (1, 1, V, N, C, 1.0)]  # lm_head, the same three
    hs, BH = C // c.n_head, b * c.n_head
    shapes += [(2 * c.n_layer, BH, T, hs, T, 0.5),   # q k^T forward, dP = dO v^T backward: (T, hs) @ (hs, T)
               (4 * c.n_layer, BH, T, T, hs, 0.5)]   # P v forward; dv, dq, dk backward: (T, T) @ (T, hs)
    return shapes


def matmul_floor(c, b, repeats=REPEATS):
    """CPU seconds and FLOPs of a step's matrix products, each product timed alone (median of ``repeats``)."""
    seconds = flops = 0.0
    for count, bh, m, k, n, share in step_products(c, b):
        a = rng.standard_normal((bh, m, k), dtype=np.float32)
        w = rng.standard_normal((bh, k, n), dtype=np.float32)
        out = np.empty((bh, m, n), np.float32)
        times = []
        for _ in range(repeats + 1):  # the first one warms up
            start = time.process_time()
            np.matmul(a, w, out=out)
            times.append(time.process_time() - start)
        seconds += count * share * float(np.median(times[1:]))
        flops += count * share * 2 * bh * m * k * n
    return seconds, flops


floor_seconds, floor_flops = matmul_floor(config, batch)
linear_flops = sum(count * 2 * m * k * n for count, bh, m, k, n, share in step_products(config, batch) if bh == 1)
assert linear_flops == flop  # the floor's Linear products are the ones counted in section 1
print(f"the floor of configuration A: {floor_flops / 1e9:.2f} GFLOP of matrix products, {1e3 * floor_seconds:.1f} ms "
      f"at {floor_flops / floor_seconds / 1e9:.0f} GFLOP/s on one thread")
for name, t in median.items():
    print(f"{name:6s} step {1e3 * t:6.1f} ms = floor + {1e3 * (t - floor_seconds):6.1f} ms "
          f"(the floor is {floor_seconds / t:.0%} of the step)")

fig, (ax_ways, ax_floor) = plt.subplots(1, 2, figsize=(11, 4))
ax_ways.bar(list(runs), [run["tokens_per_s"] for run in runs.values()], color=["C0", "C1", "C2"][: len(runs)])
ax_ways.set_ylabel("tokens per second in training (wall clock)")
ax_ways.set_title("Two cores: tinytransformer train, three ways")
ax_ways.tick_params(axis="x", labelsize=8)
ax_floor.bar(list(median), [1e3 * floor_seconds] * len(median), color="C7", label="matrix products alone (the floor)")
ax_floor.bar(list(median), [1e3 * (t - floor_seconds) for t in median.values()], bottom=1e3 * floor_seconds,
             color="C3", label="the rest of the step")
ax_floor.set_ylabel("ms per training step (CPU time, one thread)")
ax_floor.set_title("Configuration A: the floor and the rest")
ax_floor.legend(fontsize=8)
fig.tight_layout()
fig.savefig(figure_path("10_two_cores.png"), dpi=110)

# %% [markdown]
# No implementation on this machine goes below the floor: the products are the step's
# arithmetic (section 1 counted them), and BLAS already runs them near the core's peak
# rate (its kernels are hand-tuned assembly, blocked for the caches and written with
# the widest SIMD instructions). PyTorch calls a BLAS of the same kind for the same
# products, so its step is the same floor plus its own rest, and every lead over it has
# to be won in the rest: fewer passes over memory (fused kernels, sections 2 and 3), no
# temporaries that come back as page faults (section 5), less Python between the ops,
# and work skipped, such as the masked half of causal attention (section 4). More cores
# lower the floor itself, by sharing the products (threads) or the rows (ranks): on two
# cores to half of it at best.

# %% [markdown]
# ## What you can do now
#
# - Profile a training step op by op, and count the FLOPs that explain the profile.
# - Fuse an op into one `Function` with a hand-derived backward, and measure the graph
#   nodes and time it saves.
# - Read a NumPy kernel beside its Numba twin, and check that the two agree.
# - Explain what flash attention and a tuned allocator save: memory and page faults.
# - Choose between threads and processes for a second core: work per hand-off, the
#   all-reduce's bytes against the step's FLOPs, and why two ranks train the same model.
# - Time a step's matrix products alone, and say how far above that floor a step runs.
