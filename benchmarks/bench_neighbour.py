"""Training beside a busy program: a whole `tinytransformer train` run alone, then beside one busy process.

    .venv/bin/python benchmarks/bench_neighbour.py                 # config A, 200 steps, 2 repeats
    .venv/bin/python benchmarks/bench_neighbour.py --steps 40 --repeats 1 --out /tmp/neighbour.json

The busy neighbour is a Python spin loop (``while True: pass``) started in a session of its
own, as another program on a laptop would be (Linux schedules each session's processes as a
group, so the loop takes one core's worth, however many threads we run). Each variant runs
alone and beside the loop, interleaved, and we report wall time beside / alone:

- ours, default: ``tinytransformer train`` with its default threads (``kernels/threads.py``:
  as many as the cores other programs leave idle, looked at every 2 s);
- ours, 2 threads: the same run with ``--threads 2`` (what the default was before);
- ours, 1 thread: ``--threads 1``;
- torch, 2 threads: the PyTorch twin trainer (``benchmarks/torch_train.py``), with
  ``OMP_WAIT_POLICY=PASSIVE`` as in the other benchmarks unless the environment sets it.

Results go to benchmarks/results/neighbour.json with the machine's header.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine_header, write_result  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
# bench_train.py's configuration A through the command line, on the built-in corpus
CONFIG_A = ["--data", "pydoc", "--tokenizer", "char", "--n-layer", "4", "--n-head", "4", "--n-embd", "128",
            "--block-size", "64", "--batch-size", "12"]
SPIN = "while True: pass"


def ours(steps, out, *flags):
    return [sys.executable, "-m", "tinytransformer", "train", *CONFIG_A, "--max-iters", str(steps),
            "--eval-interval", str(steps), "--out", out, "--overwrite", *flags]


def torch_twin(steps, out):
    """The PyTorch twin trainer's command for the same run."""
    return [sys.executable, str(Path(__file__).parent / "torch_train.py"), *CONFIG_A, "--max-iters", str(steps),
            "--eval-interval", str(steps), "--out", out, "--threads", "2"]


def timed(command):
    """Wall seconds of ``command`` run to completion (its output discarded; an error raised with its stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                           "NUMBA_NUM_THREADS", "MKL_NUM_THREADS")}
    env["MPLBACKEND"] = "Agg"
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch's idle threads sleep (as in bench_train.py)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "neighbour.json"))
    args = parser.parse_args()
    result = {"header": machine_header(threads="per variant", steps=args.steps, config="A", neighbour=SPIN)}
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "run")
        variants = {"ours_default": ours(args.steps, out), "ours_2_threads": ours(args.steps, out, "--threads", "2"),
                    "ours_1_thread": ours(args.steps, out, "--threads", "1")}
        variants["torch_2_threads"] = torch_twin(args.steps, str(Path(tmp) / "torch"))
        timed(ours(5, out))  # warm Numba's cache: every timed run then loads it, as a user's second run does
        seconds = {name: {"alone": [], "beside_busy": []} for name in variants}
        for r in range(args.repeats):
            for busy in (False, True) if r % 2 == 0 else (True, False):
                spinner = subprocess.Popen([sys.executable, "-c", SPIN], start_new_session=True) if busy else None
                try:
                    for name, command in variants.items():
                        seconds[name]["beside_busy" if busy else "alone"].append(timed(command))
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
    for name, s in seconds.items():
        alone, beside = float(np.median(s["alone"])), float(np.median(s["beside_busy"]))
        result[name] = {"seconds": s, "alone_s": alone, "beside_busy_s": beside, "slowdown": beside / alone}
        print(f"{name:<18} alone {alone:6.1f} s   beside a busy process {beside:6.1f} s   x{beside / alone:.2f}",
              flush=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
