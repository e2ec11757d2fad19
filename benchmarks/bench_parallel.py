"""Data-parallel training on two cores: one process of two threads against two processes of one thread, ours and
PyTorch's.

    .venv/bin/python benchmarks/bench_parallel.py                   # configs A and B -> benchmarks/results/parallel.json
    .venv/bin/python benchmarks/bench_parallel.py --quick           # a smoke test: config A, 3 rounds, not written

The four ways to train one GPT step on the global batch of bench_train.py's CONFIGS (A: batch 12 of 64 tokens, B:
batch 16 of 256), the same weights and batch everywhere (checked: all start from the same loss):

    ours_1x2        one process, 2 threads (BLAS and Numba), the whole batch
    ours_mpi_2x1    2 MPI ranks of 1 thread (mpiexec, the mpi extra), B/2 rows each, gradients all-reduced in
                    buckets (training.distributed), as `train --nproc 2` runs
    torch_2t        PyTorch eager, 2 threads, the whole batch
    torch_ddp_2x1   PyTorch DistributedDataParallel, gloo backend, 2 processes of 1 thread, B/2 rows each

The multi-process ones run as persistent workers that sleep on a FIFO (never in an MPI or gloo call, which may
spin a core) until the coordinator asks for one step; so the four are interleaved one step each per round, the
order alternating, and a change in the machine's load hits all alike. A step is timed on rank 0 from a barrier to
the end of the optimizer step. Each multi-process step also reports its all-reduce: ours measured inside the step
(the reduction follows backward), DDP's timed as one gloo all_reduce of the same bytes right after the step (DDP
overlaps it with backward, so it is not a part of the step one can cut out). Bytes per step: the gradient's float32
payload; a ring all-reduce sends 2(N-1)/N of it per rank (N=2: once).
"""

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_train.py: idle worker threads sleep
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import CONFIGS, summary  # noqa: E402  (one source for the configurations)
from machine import cpu_model, write_result  # noqa: E402

import tinytransformer as tt  # noqa: E402
from tinytransformer.kernels import set_num_threads  # noqa: E402
from tinytransformer.models import GPT, GPTConfig  # noqa: E402

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("ours_1x2", "ours_mpi_2x1", "torch_2t", "torch_ddp_2x1")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def batch_and_model(name):
    """bench_train.py's model and batch for configuration ``name`` -> (model, idx, targets), seeded the same way."""
    spec = CONFIGS[name]
    tt.manual_seed(0)
    model = GPT(GPTConfig(**spec["model"]))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, model.config.vocab_size, (spec["batch"], model.config.block_size))
    return model, idx, rng.integers(0, model.config.vocab_size, idx.shape)


def rows(array, rank, size):
    share = len(array) // size
    return array[rank * share:(rank + 1) * share]  # (B/N, T)


def ours_step(name, world=None):
    """Our training step: the whole batch in one process, or this rank's rows and an all-reduce (``world``)."""
    from tinytransformer.kernels import use_backend

    model, idx, targets = batch_and_model(name)
    if world is not None:
        idx, targets = rows(idx, world.rank, world.size), rows(targets, world.rank, world.size)
    params = list(model.parameters())
    opt = tt.optim.AdamW(params, lr=3e-4, weight_decay=0.1)

    def step():
        with use_backend("numba"):
            opt.zero_grad()
            _, loss = model(idx, targets)
            loss.backward()
            if world is not None:
                world.average_gradients(params)
            opt.step()
            return loss.item() if world is None else world.average(loss.item())
    return step, sum(p.data.nbytes for p in params)


def torch_step(name, rank=0, size=1):
    """PyTorch's step: eager on the whole batch, or DDP (an initialised gloo group of ``size``) on this rank's rows."""
    import torch
    import torch.distributed as dist

    from tinytransformer.reference.torch_gpt import TorchGPT

    model, idx, targets = batch_and_model(name)
    twin = TorchGPT.from_config(model.config).load_numpy_state(model.state_dict())
    idx_t, targets_t = torch.from_numpy(rows(idx, rank, size)), torch.from_numpy(rows(targets, rank, size))
    if size > 1:
        twin = torch.nn.parallel.DistributedDataParallel(twin)
    opt = torch.optim.AdamW(twin.parameters(), lr=3e-4, weight_decay=0.1)

    def step():
        opt.zero_grad()
        _, loss = twin(idx_t, targets_t)
        loss.backward()
        opt.step()
        return loss.item()

    def global_loss(value):
        if size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return t.item() / size
    return step, global_loss, sum(p.numel() * 4 for p in twin.parameters())


# ------------------------------------------------------------------ workers
def worker(kind, name, ctl, rank=None):
    """(In a worker process.) Build the step, warm up, then answer each "step" line on this rank's FIFO with a JSON
    line of the step's time (and the all-reduce's) until "quit"."""
    if kind == "mpi":
        from mpi4py import MPI

        from tinytransformer.training.distributed import World

        world = World(MPI.COMM_WORLD)
        rank, size = world.rank, world.size
        set_num_threads(1)
        step, nbytes = ours_step(name, world)
        barrier, first = world.comm.Barrier, world.average
        probe = None
    else:
        import torch
        import torch.distributed as dist

        size = 2
        torch.set_num_threads(1)
        set_num_threads(1)
        dist.init_process_group("gloo", init_method=os.environ["TT_BENCH_INIT"], rank=rank, world_size=size)
        step, global_loss, nbytes = torch_step(name, rank, size)
        barrier, first = dist.barrier, global_loss
        flat = torch.zeros(nbytes // 4)

        def probe():
            barrier()
            start = time.perf_counter()
            dist.all_reduce(flat)
            return time.perf_counter() - start
    loss = first(step())  # the warm-up (and Numba's cache) and the start loss of the whole batch
    step()
    with open(Path(ctl) / f"{kind}.{rank}.in") as commands, open(Path(ctl) / f"{kind}.{rank}.out", "w") as answers:
        answers.write(json.dumps({"first_loss": loss, "bytes": nbytes}) + "\n")
        answers.flush()
        for line in commands:
            if line.strip() == "quit":
                break
            before = world.reduce_seconds if kind == "mpi" else 0.0
            barrier()
            start = time.perf_counter()
            step()
            seconds = time.perf_counter() - start
            reduce = world.reduce_seconds - before if kind == "mpi" else probe()
            answers.write(json.dumps({"seconds": seconds, "allreduce_seconds": reduce}) + "\n")
            answers.flush()
    if kind == "ddp":
        dist.destroy_process_group()


class Workers:
    """Two ranks of ``kind`` ("mpi": under mpiexec; "ddp": two Python processes in a gloo group), driven over FIFOs."""

    def __init__(self, kind, name, ctl):
        self.kind, self.pipes = kind, []
        base = [sys.executable, __file__, "--worker", kind, "--configs", name, "--ctl", ctl]
        env = {**os.environ, **ONE_THREAD}
        for rank in range(2):
            for end in ("in", "out"):
                os.mkfifo(Path(ctl) / f"{kind}.{rank}.{end}")
        if kind == "mpi":
            mpiexec = Path(sys.executable).parent / "mpiexec"
            self.procs = [subprocess.Popen([str(mpiexec), "-n", "2", *base], env=env)]
        else:
            with socket.socket() as s:  # a free port for gloo's rendezvous
                s.bind(("127.0.0.1", 0))
                env["TT_BENCH_INIT"] = f"tcp://127.0.0.1:{s.getsockname()[1]}"
            self.procs = [subprocess.Popen([*base, "--rank", str(rank)], env=env) for rank in range(2)]
        for rank in range(2):
            commands = open(Path(ctl) / f"{kind}.{rank}.in", "w")
            answers = open(Path(ctl) / f"{kind}.{rank}.out")
            self.pipes.append((commands, answers))
        self.ready = [json.loads(answers.readline()) for _, answers in self.pipes]

    def step(self):
        for commands, _ in self.pipes:
            commands.write("step\n")
            commands.flush()
        return [json.loads(answers.readline()) for _, answers in self.pipes][0]  # rank 0's

    def close(self):
        for commands, answers in self.pipes:
            commands.write("quit\n")
            commands.close()
            answers.close()
        for proc in self.procs:
            proc.wait(timeout=60)


def bench(name, rounds, ctl):
    import torch

    set_num_threads(2)
    torch.set_num_threads(2)
    ours, nbytes = ours_step(name)
    eager, _, _ = torch_step(name)
    first = {"ours_1x2": ours(), "torch_2t": eager()}
    ours(), eager()
    workers = {"ours_mpi_2x1": Workers("mpi", name, ctl), "torch_ddp_2x1": Workers("ddp", name, ctl)}
    try:
        for variant, group in workers.items():
            first[variant] = group.ready[0]["first_loss"]
        if not np.allclose(list(first.values()), first["torch_2t"], rtol=1e-5):
            raise AssertionError(f"bench_parallel {name}: the variants start from different losses {first}")
        times = {v: [] for v in VARIANTS}
        reduces = {v: [] for v in workers}
        for r in range(rounds):
            for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                if variant in workers:
                    answer = workers[variant].step()
                    times[variant].append(answer["seconds"])
                    reduces[variant].append(answer["allreduce_seconds"])
                else:
                    start = time.perf_counter()
                    (ours if variant == "ours_1x2" else eager)()
                    times[variant].append(time.perf_counter() - start)
    finally:
        for group in workers.values():
            group.close()
    result = {v: summary(t) for v, t in times.items()}
    for variant, seconds in reduces.items():
        result[variant]["allreduce_median_ms"] = 1e3 * float(np.median(seconds))
        result[variant]["allreduce_bytes_per_step"] = workers[variant].ready[0]["bytes"]
        result[variant]["ring_bytes_sent_per_rank"] = workers[variant].ready[0]["bytes"] * 2 * (2 - 1) / 2
    result["first_loss"] = first
    result["gradient_bytes"] = nbytes
    med = {v: result[v]["median_ms"] for v in VARIANTS}
    result["ratios"] = {"ours_mpi/ours_1x2": med["ours_mpi_2x1"] / med["ours_1x2"],
                        "ddp/torch_2t": med["torch_ddp_2x1"] / med["torch_2t"],
                        "ours_mpi/ddp": med["ours_mpi_2x1"] / med["torch_ddp_2x1"]}
    return result


def header():
    import mpi4py
    import torch
    from mpi4py import MPI

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(), "cpu": cpu_model(),
        "cores": os.cpu_count(), "load_average_before": os.getloadavg(), "python": platform.python_version(),
        "numpy": np.__version__, "torch": torch.__version__, "tinytransformer": tt.__version__,
        "mpi4py": mpi4py.__version__, "mpi": MPI.Get_library_version().splitlines()[0].strip(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
    }


def table(result, configs):
    lines = [f"{'config':6} {'variant':15} {'median ms':>10} {'q1-q3 ms':>15} {'all-reduce ms':>14} {'bytes/step':>11}"]
    for name in configs:
        r = result["step"][name]
        for v in VARIANTS:
            reduce = r[v].get("allreduce_median_ms")
            lines.append(f"{name:6} {v:15} {r[v]['median_ms']:10.1f} {r[v]['q1_ms']:7.1f}-{r[v]['q3_ms']:<7.1f} "
                         f"{'' if reduce is None else f'{reduce:.2f}':>14} "
                         f"{r[v].get('allreduce_bytes_per_step', ''):>11}")
        lines.append(f"{name:6} ratios {', '.join(f'{k} {v:.2f}' for k, v in r['ratios'].items())}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="AB", help="which of bench_train.py's CONFIGS (default AB)")
    parser.add_argument("--rounds", type=int, nargs=2, default=(15, 5), metavar=("A", "B"), help="rounds per config")
    parser.add_argument("--quick", action="store_true", help="a smoke test: config A, 3 rounds, no results file")
    parser.add_argument("--out", default=str(RESULTS / "parallel.json"))
    parser.add_argument("--worker", choices=("mpi", "ddp"), help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ctl", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.configs, args.ctl, args.rank)
    configs, rounds = ("A", {"A": 3}) if args.quick else (args.configs, dict(zip("AB", args.rounds)))
    result = {"header": header(), "configs": {name: CONFIGS[name] for name in configs}, "step": {}}
    print(json.dumps(result["header"], indent=1), flush=True)
    for name in configs:
        with tempfile.TemporaryDirectory() as ctl:
            result["step"][name] = bench(name, rounds[name], ctl)
    print(table(result, configs))
    if not args.quick:
        write_result(args.out, result)


if __name__ == "__main__":
    main()
