"""Each kernel's forward + backward: the NumPy reference, the Numba twin, and PyTorch (CPU), side by side.

    .venv/bin/python benchmarks/bench_kernels.py            # both configurations, 7 rounds
    .venv/bin/python benchmarks/bench_kernels.py --rounds 3 --configs A --threads 1
    .venv/bin/python benchmarks/bench_kernels.py --threads 1 --clock cpu   # on a busy machine

Shapes are those of a GPT at two sizes (B batch, T context, C width, H heads,
V vocabulary). In each round every implementation runs once, in turn, so that
a change in the machine's load hits all three alike; the table reports each
one's median over the rounds, after one warm-up call (which also compiles the
Numba kernels). Prints backend_info() first, then the table, and writes
benchmarks/results/kernels.json.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

# Torch's OpenMP workers spin for a while after each op, on the cores that the NumPy and
# Numba runs interleaved with it need next (see tinytransformer/kernels/backend.py);
# sleeping workers keep the three from slowing each other down. Read when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tinytransformer.kernels import (  # noqa: E402
    adamw_update,
    backend_info,
    causal_attention_backward,
    causal_attention_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    embedding_backward,
    gelu_backward,
    gelu_forward,
    layer_norm_backward,
    layer_norm_forward,
    set_num_threads,
    use_backend,
)
from tinytransformer.training.checkpoint import atomic_write_text  # noqa: E402

# Flash and BLAS attention live beside lesson 10, which teaches them: nothing in the library runs them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lessons"))
from flash_attention import (  # noqa: E402
    blas_attention_backward,
    blas_attention_forward,
    flash_attention_backward,
    flash_attention_forward,
)

RESULTS = Path(__file__).parent / "results" / "kernels.json"
CONFIGS = {"A": dict(B=12, T=64, C=128, H=4, V=65), "B": dict(B=16, T=256, C=384, H=6, V=65)}
F = torch.nn.functional


def _torch(*arrays):
    return [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]


def cases(cfg, rng):
    """{kernel: (description, our forward+backward, torch's forward+backward)} for one configuration."""
    B, T, C, H, V = (cfg[k] for k in "BTCHV")
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    x, w, b, g = f32(B * T, C), f32(C), f32(C), f32(B * T, C)
    h, gh = f32(B * T, 4 * C), f32(B * T, 4 * C)
    logits, targets = f32(B * T, V), rng.integers(0, V, B * T)
    table, g_emb = f32(V, C), f32(B * T, C)
    n_params = 12 * C * C  # one Transformer block's weights
    param, grad = f32(n_params), f32(n_params)
    moments = [np.zeros(n_params, np.float32), np.zeros(n_params, np.float32)]
    q, k, v, go = (f32(B, H, T, C // H) for _ in range(4))

    def layer_norm():
        y, mean, rstd = layer_norm_forward(x, w, b)
        return layer_norm_backward(g, x, w, mean, rstd)

    def gelu():
        gelu_forward(h)
        return gelu_backward(gh, h)

    def cross_entropy():
        _, lse = cross_entropy_forward(logits, targets)
        return cross_entropy_backward(1.0, logits, targets, lse)

    def embedding():
        _ = table[targets]  # the forward: a gather
        return embedding_backward(g_emb, targets, V)

    def flash():
        out, lse = flash_attention_forward(q, k, v, is_causal=True)
        return flash_attention_backward(go, q, k, v, out, lse, is_causal=True)

    def blas():
        out, probs = blas_attention_forward(q, k, v, is_causal=True)
        return blas_attention_backward(go, q, k, v, probs)

    def causal_blocked():  # the library's causal attention: block rows, the masked half skipped
        out, lse = causal_attention_forward(q, k, v, 1 / (C // H) ** 0.5)
        return causal_attention_backward(go, q, k, v, out, lse, 1 / (C // H) ** 0.5)

    def torch_case(fn, arrays, grad_out):
        tensors = _torch(*arrays)
        grad_t = torch.tensor(grad_out) if grad_out is not None else None

        def run():
            for t in tensors:
                t.grad = None
            out = fn(*tensors)
            out.backward(grad_t)
        return run

    p_t = torch.tensor(param)
    opt = torch.optim.AdamW([p_t], lr=1e-3, weight_decay=0.1)
    p_t.grad = torch.tensor(grad)
    tq = _torch(q, k, v)

    def torch_attention():
        for t in tq:
            t.grad = None
        F.scaled_dot_product_attention(*tq, is_causal=True).backward(torch.tensor(go))

    step = [0]

    def adamw():
        step[0] += 1
        adamw_update(param, grad, *moments, step[0], 1e-3, 0.9, 0.999, 1e-8, 0.1)

    emb_idx = torch.tensor(targets)
    return {
        "layer_norm": (f"x ({B * T}, {C})", layer_norm,
                       torch_case(lambda x, w, b: F.layer_norm(x, (C,), w, b), (x, w, b), g)),
        "gelu (erf)": (f"x ({B * T}, {4 * C})", gelu, torch_case(F.gelu, (h,), gh)),
        "cross_entropy": (f"logits ({B * T}, {V})", cross_entropy,
                          torch_case(lambda z: F.cross_entropy(z, torch.tensor(targets)), (logits,), None)),
        "embedding": (f"({B * T},) ids -> ({V}, {C})", embedding,
                      torch_case(lambda t: F.embedding(emb_idx, t), (table,), g_emb)),
        "adamw": (f"{n_params} params", adamw, opt.step),
        "attention flash": (f"q,k,v ({B}, {H}, {T}, {C // H})", flash, torch_attention),
        "attention blas": (f"q,k,v ({B}, {H}, {T}, {C // H})", blas, torch_attention),
        "attention causal-blocked": (f"q,k,v ({B}, {H}, {T}, {C // H})", causal_blocked, torch_attention),
    }


def measure(runs, rounds, clock):
    """Median seconds per implementation, the implementations interleaved round by round."""
    for fn in runs.values():
        fn()  # warm-up (and Numba's compile)
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--configs", default="AB")
    parser.add_argument("--threads", type=int, help="threads for BLAS, Numba and torch (default: all cores)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the process's CPU time, which other processes' load does not inflate; "
                             "meaningful with --threads 1 (with more threads it adds up all threads' time)")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        set_num_threads(args.threads)
        torch.set_num_threads(args.threads)

    with use_backend("numba"):
        gelu_forward(np.zeros(8, np.float32))  # launches Numba's threads, so the info shows the layer in use
        info = backend_info()
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    info["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY")
    info["clock"] = args.clock
    for key, value in info.items():
        print(f"# {key}: {value}")

    rng = np.random.default_rng(0)
    rows = []
    header = f"{'kernel':24s} {'cfg':3s} {'shape':28s} {'numpy ms':>9s} {'numba ms':>9s} {'torch ms':>9s} {'numpy/numba':>11s} {'numba/torch':>11s}"
    print(header + "\n" + "-" * len(header))
    for cfg_name in args.configs:
        for kernel, (shape, ours, theirs) in cases(CONFIGS[cfg_name], rng).items():

            def on(backend, fn=ours):
                def run():
                    with use_backend(backend):
                        fn()
                return run

            t = measure({"numpy": on("numpy"), "numba": on("numba"), "torch": theirs}, args.rounds, clock)
            row = {"kernel": kernel, "config": cfg_name, **CONFIGS[cfg_name], "shape": shape,
                   **{f"{k}_ms": round(v * 1e3, 3) for k, v in t.items()},
                   "numpy_over_numba": round(t["numpy"] / t["numba"], 2),
                   "numba_over_torch": round(t["numba"] / t["torch"], 2)}
            rows.append(row)
            print(f"{kernel:24s} {cfg_name:3s} {shape:28s} {row['numpy_ms']:9.2f} {row['numba_ms']:9.2f} "
                  f"{row['torch_ms']:9.2f} {row['numpy_over_numba']:11.2f} {row['numba_over_torch']:11.2f}", flush=True)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps({"machine": platform.platform(), "info": info, "rounds": args.rounds,
                                   "configs": CONFIGS, "results": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
