"""LoRA against full fine-tuning: what trains, the optimizer's state, peak memory and time per step.

    .venv/bin/python benchmarks/lora.py                        # the test-size GPT-2 and a wider one, rank 8
    .venv/bin/python benchmarks/lora.py --sizes test --rank 4 --steps 20

A classification head (``SequenceClassifier``, max pooling) on a random GPT-2-shaped body (our
``GPT``: learned positions, biases, GELU's tanh form), one fine-tuning step as ``finetune`` takes
it: forward, backward, gradient clipping at 1.0, AdamW. Two ways:

- full: every parameter of the body and the head trains (``finetune --pretrained ...``);
- lora: the body frozen, adapters of rank ``--rank`` on every c_attn, c_proj and c_fc
  (``finetune --pretrained ... --lora RANK``), the head trains.

For each: the parameters trained, the bytes of AdamW's state (its two moments) and of the
gradients, the peak of traced memory during one step after the optimizer's state exists
(tracemalloc: NumPy reports its arrays to it; weights, gradients, state and the step's
activations), and the median time of a step over ``--steps`` steps, full and LoRA interleaved
step by step so a busy machine slows both alike. Memory is measured in a separate pass, since
tracing slows the steps, and after the timed one, whose warm-up compiles Numba's kernels (the
compiler's own allocations would be traced too). Writes benchmarks/results/lora.json with the load average before and
after: on a shared machine the times are indicative.
"""

import argparse
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np

import tinytransformer as tt
from tinytransformer.kernels import get_backend, set_num_threads
from tinytransformer.models import GPTConfig, SequenceClassifier
from tinytransformer.optim import AdamW, clip_grad_norm_

RESULTS = Path(__file__).parent / "results"
SIZES = {  # GPT-2's architecture at small sizes; "test" is the size the tests' GPT-2s are built at, scaled up a little
    "test": dict(vocab_size=1000, block_size=64, n_layer=4, n_head=4, n_embd=128, activation="gelu_tanh"),
    "wider": dict(vocab_size=8000, block_size=128, n_layer=6, n_head=6, n_embd=384, activation="gelu_tanh"),
}
BATCH, LENGTH = 16, 48  # sentences per step, tokens each (an SST-2 sentence is about 25 words)


def build(size, rank):
    """A classifier on a random GPT-2 body, with LoRA adapters of ``rank`` (None: full fine-tuning), and its AdamW."""
    tt.manual_seed(0)
    model = SequenceClassifier(GPTConfig(**SIZES[size], dropout=0.1), 2, pooling="max")
    if rank is not None:
        model.add_lora(rank)
    optimizer = AdamW(model.param_groups(lr=1e-4, weight_decay=0.01))
    return model, optimizer


def batches(size, seed=0):
    rng = np.random.default_rng(seed)
    while True:
        yield rng.integers(0, SIZES[size]["vocab_size"], (BATCH, LENGTH)), rng.integers(0, 2, BATCH)


def step(model, optimizer, batch):
    idx, labels = batch
    model(idx, labels=labels)[1].backward()
    clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)  # keep the gradient arrays, as a training loop holds them


def state_bytes(optimizer):
    return sum(v.nbytes for s in optimizer.state.values() for v in s.values() if isinstance(v, np.ndarray))


def measure_memory(size, rank):
    """Traced bytes: the model alone, and the peak during one step once AdamW's state exists."""
    tracemalloc.start()
    model, optimizer = build(size, rank)
    after_build = tracemalloc.get_traced_memory()[0]
    data = batches(size)
    for _ in range(2):  # the first step creates the gradients and the optimizer's state
        step(model, optimizer, next(data))
    tracemalloc.reset_peak()
    step(model, optimizer, next(data))
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    trained = [p for g in optimizer.param_groups for p in g["params"]]
    return {"parameters": model.num_parameters(), "parameters_trained": sum(p.size for p in trained),
            "gradient_bytes": sum(p.grad.nbytes for p in trained if p.grad is not None),
            "optimizer_state_bytes": state_bytes(optimizer), "model_bytes": after_build,
            "held_between_steps_bytes": current, "peak_step_bytes": peak}


def measure_time(size, rank, steps):
    """Median seconds per step of full fine-tuning and of LoRA, interleaved step by step."""
    runs = {"full": build(size, None), "lora": build(size, rank)}
    data = {name: batches(size) for name in runs}
    for name, (model, optimizer) in runs.items():  # warm-up: Numba's kernels, the optimizer's state
        for _ in range(2):
            step(model, optimizer, next(data[name]))
    seconds = {name: [] for name in runs}
    for _ in range(steps):
        for name, (model, optimizer) in runs.items():
            start = time.perf_counter()
            step(model, optimizer, next(data[name]))
            seconds[name].append(time.perf_counter() - start)
    return {name: float(np.median(s)) * 1e3 for name, s in seconds.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each, interleaved")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "lora.json"))
    args = parser.parse_args()
    set_num_threads(args.threads)
    result = {"header": {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(),
                         "threads": args.threads, "backend": get_backend(), "rank": args.rank, "batch": BATCH,
                         "tokens_per_sentence": LENGTH, "steps": args.steps, "load_average_before": os.getloadavg()}}
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.threads} thread(s), backend {get_backend()}")
    for size in args.sizes:
        ms = measure_time(size, args.rank, args.steps)  # first: its warm-up compiles Numba's kernels
        rows = {"full": measure_memory(size, None), "lora": measure_memory(size, args.rank)}
        for name in rows:
            rows[name]["ms_per_step_median"] = round(ms[name], 1)
        result[size] = {"config": SIZES[size], **rows}
        for name, row in rows.items():
            print(f"{size:>5} {name:>4}: {row['parameters_trained']:>10,} of {row['parameters']:,} parameters train; "
                  f"AdamW state {row['optimizer_state_bytes'] / 2**20:6.2f} MiB, gradients "
                  f"{row['gradient_bytes'] / 2**20:6.2f} MiB, peak during a step {row['peak_step_bytes'] / 2**20:6.1f} "
                  f"MiB (model alone {row['model_bytes'] / 2**20:.1f}); {row['ms_per_step_median']:.1f} ms/step")
    result["header"]["load_average_after"] = os.getloadavg()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
