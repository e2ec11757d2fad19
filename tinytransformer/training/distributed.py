"""Data-parallel training: N processes, one copy of the model each, every global batch split among them.

    mpirun -n 2 python -m tinytransformer train --batch-size 12      each of 2 ranks takes 6 rows of every batch
    tinytransformer train --batch-size 12 --nproc 2                   the same, launched for you (``launch``)

One step on rank r of N (``World`` and ``RankRows`` below; the loop is ``Trainer.train_step``):

    batch = source.next_batch(rng)          every rank draws the same global batch of B rows (same seed)
    rows  = batch[r*B/N : (r+1)*B/N]        ...and keeps its own share of B/N rows
    loss_r = loss(model, rows); backward    g_r = the gradient of rank r's mean loss
    g = allreduce(g_r) / N                  every rank now holds the same mean gradient
    clip(g); optimizer.step()               identical weights stay identical

Why the average of the ranks' gradients is the one-process gradient. The loss
is a mean over the B rows (for a language model, over the B*T tokens) of a
per-row loss l_i. Rank r's loss is the mean over its own B/N rows, so

    (1/N) sum_r grad[ (N/B) sum_{i in r} l_i ] = (1/N)(N/B) sum_i grad l_i = grad[ (1/B) sum_i l_i ]

exactly, in real arithmetic: the N-rank run is the one-process run. In float32
the sums are taken in another order (the per-rank matmuls, then the
all-reduce), so the two runs agree to rounding (measured: relative 1e-7 on the
losses of 50 AdamW steps of a tiny GPT, 4e-7 of scale on its weights; see
tests/training/test_distributed.py). The shares must be equal (``B % N == 0``,
checked) and each rank's loss a mean over equally weighted rows: a BERT's
masked-LM loss averages over the masked tokens of its rows, whose count differs
by rank, so there the average of the ranks' means weights ranks, not tokens,
equally (a slightly different, equally valid estimate of the gradient).

All-reduce, and what it costs. ``Allreduce`` leaves the element-wise sum of
every rank's buffer on every rank. The classic algorithm for large buffers is
the ring (Patarasuk & Yuan 2009; Baidu's allreduce for deep learning, 2017):
the buffer of S bytes is cut into N chunks; in N-1 steps of reduce-scatter each
rank sends one chunk to its neighbour and adds the one it receives, so each
rank ends up owning the full sum of one chunk; in N-1 steps of all-gather the
summed chunks travel round the ring. Each rank sends 2(N-1) chunks of S/N
bytes, 2(N-1)/N bytes per byte of gradient: at most twice the gradient,
however many ranks (1 byte per byte for N=2). MPI picks its own algorithm by
size (recursive doubling for small buffers, reduce-scatter + all-gather for
large ones), all near that bound for a large buffer.

Buckets. Reducing each parameter's gradient on its own pays the per-message
latency once per tensor (a GPT has dozens); reducing one buffer of all of them
pays it once but copies every gradient into it. ``average_gradients`` packs
consecutive gradients into buckets of up to ``bucket_bytes`` (25 MiB, PyTorch
DDP's default ``bucket_cap_mb``), one ``Allreduce`` each, in place. PyTorch
also starts each bucket's reduction while backward is still computing the
gradients of earlier layers, hiding the communication; our backward is one
Python loop, so here the reduction follows it.

Identical weights. Every rank builds its model from the same seed (or loads
the same checkpoint), so nothing is broadcast; ``check_same_state`` verifies
it, bit for bit, at the start of training and at every evaluation, together
with the batch generator that every rank must share.

Dropout. One process draws one mask for the whole batch; rank r cannot draw
rows r*B/N... of that mask without drawing the whole of it. Instead rank 0
keeps the library's generator and rank r > 0 draws from that stream jumped
ahead by r * 2^127 draws (``rank_stream``): independent masks, reproducible
from the seed, and saved per rank in every checkpoint, so ``--resume``
continues exactly. With dropout the N-rank run is therefore a different (and
equally valid) run from the one-process run; without dropout it is the same.

Threads. Under MPI each rank defaults to cores / (ranks on this machine)
threads for BLAS and Numba (at least 1), unless one of ``kernels.threads.THREAD_VARIABLES`` is
set: N ranks of one thread each, not N ranks that each start a thread per core.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from functools import cache
from pathlib import Path

import numpy as np

from ..extras import import_optional, install_hint
from ..kernels.threads import THREAD_VARIABLES, usable_cores

# How a launcher tells a process the number of ranks: MPICH's Hydra (also Slurm's PMI), Open MPI.
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
BUCKET_BYTES = 25 * 2**20  # PyTorch DDP's bucket_cap_mb=25


class World:
    """The processes that train one model together: ``size`` of them, this one is ``rank``.

    ``World()`` is one process alone: every method returns at once (or returns
    its input), so the single-process loop pays nothing for data parallelism.
    ``World(comm)`` wraps an MPI communicator (mpi4py's ``MPI.COMM_WORLD``).
    ``reduce_seconds``, ``reduced_bytes`` and ``reductions`` count the gradient
    all-reduces (time, payload, calls) for benchmarks.
    """

    def __init__(self, comm=None, bucket_bytes=BUCKET_BYTES):
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self.bucket_bytes = bucket_bytes
        self.reduce_seconds, self.reduced_bytes, self.reductions = 0.0, 0, 0

    @property
    def is_root(self) -> bool:
        """Rank 0: the one that writes checkpoints, plots, progress and logs."""
        return self.rank == 0

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size})"

    # --------------------------------------------------------- the batch
    def share(self, source):
        """This rank's rows of every batch ``source`` gives (``RankRows``); ``source`` itself in one process."""
        if self.size == 1 or source is None or isinstance(source, RankRows):
            return source
        return RankRows(source, self.rank, self.size)

    # ----------------------------------------------------- the reductions
    def average(self, value: float) -> float:
        """The mean of a number over the ranks (a loss): ``(1/N) sum_r value_r``."""
        if self.size == 1:
            return value
        return self.comm.allreduce(float(value)) / self.size

    def average_gradients(self, parameters) -> None:
        """Replace each parameter's ``.grad`` by its mean over the ranks, bucket by bucket (see the module
        docstring): pack up to ``bucket_bytes`` of gradients into one contiguous buffer, ``Allreduce`` it
        in place (the sum), divide by N, and hand each parameter its slice back."""
        if self.size == 1:
            return
        from mpi4py import MPI  # present: a World of several ranks is built from it

        started = time.perf_counter()
        for bucket in gradient_buckets(parameters, self.bucket_bytes):
            flat = np.concatenate([p.grad.ravel() for p in bucket])  # (n,) one message instead of len(bucket)
            self.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)     # every rank: the sum over ranks
            flat /= self.size                                        # the mean
            offset = 0
            for p in bucket:
                p.grad = flat[offset:offset + p.grad.size].reshape(p.grad.shape)  # a view of the bucket
                offset += p.grad.size
            self.reduced_bytes += flat.nbytes
            self.reductions += 1
        self.reduce_seconds += time.perf_counter() - started

    def from_root(self, value):
        """Rank 0's ``value`` on every rank: a decision all must take together (stop the run now)."""
        return value if self.size == 1 else self.comm.bcast(value, root=0)

    def gather(self, value) -> list:
        """Every rank's ``value`` (any picklable object) as a list on rank 0, None elsewhere."""
        if self.size == 1:
            return [value]
        return self.comm.gather(value, root=0)

    # --------------------------------------------------- identical copies
    def check_same_state(self, model, batch_rng, where="Trainer") -> None:
        """A ValueError on every rank unless all ranks hold bit-identical weights and the same batch
        generator, naming the first parameter that differs from rank 0's."""
        if self.size == 1:
            return
        digests = {name: hashlib.sha256(np.ascontiguousarray(p.data).tobytes()).hexdigest()
                   for name, p in model.named_parameters()}
        digests["the batch generator"] = hashlib.sha256(
            json.dumps(batch_rng.bit_generator.state, sort_keys=True, default=str).encode()).hexdigest()
        everyone = self.comm.allgather(digests)
        for rank, theirs in enumerate(everyone):
            differ = [name for name in everyone[0] if theirs.get(name) != everyone[0][name]]
            if differ or theirs.keys() != everyone[0].keys():
                what = differ[0] if differ else "the list of parameters"
                raise ValueError(f"{where}: rank {rank} holds another {what} than rank 0; every rank must start "
                                 "from the same seed, data and code (or the same checkpoint)")

    # ---------------------------------------------------------- dropout
    def own_stream(self, state: dict) -> dict:
        """The library generator's state this rank draws dropout masks from, given rank 0's: the same on
        rank 0, that stream jumped ahead by ``rank`` * 2^127 draws on the others (``rank_stream``)."""
        return state if self.rank == 0 else rank_stream(state, self.rank)

    def restored_stream(self, saved: dict) -> dict:
        """This rank's library-generator state from a checkpoint's ``rng`` record: its own if the run had
        this many ranks (``library_by_rank``), else rank 0's made this rank's (``own_stream``)."""
        by_rank = saved.get("library_by_rank")
        if by_rank is not None and len(by_rank) == self.size:
            return by_rank[self.rank]
        return self.own_stream(saved["library"])


def gradient_buckets(parameters, bucket_bytes) -> list:
    """The parameters that have a gradient, in order, grouped into lists of at most ``bucket_bytes`` of
    gradient (a larger gradient gets a bucket of its own) and of one dtype each."""
    buckets, current, size = [], [], 0
    for p in parameters:
        if p.grad is None:
            continue
        g = p.grad
        if current and (size + g.nbytes > bucket_bytes or g.dtype != current[0].grad.dtype):
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += g.nbytes
    return buckets + ([current] if current else [])


def rank_stream(state: dict, rank: int) -> dict:
    """A generator state ``rank`` * 2^127 draws (for PCG64) ahead of ``state``: streams that never overlap."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return bit_generator.jumped(rank).state


class RankRows:
    """A batch source that gives rank ``rank`` of ``size`` its rows ``[rank*B/size, (rank+1)*B/size)`` of every
    batch of ``source``: each part of the batch (an array, or a tuple of arrays with B rows each) is cut the same
    way. Every rank draws the whole batch from the same generator, so the shares never overlap and cover it."""

    def __init__(self, source, rank, size):
        self.source, self.rank, self.size = source, rank, size

    @property
    def tokens(self):
        return self.source.tokens

    @property
    def tokens_per_batch(self):
        """The tokens of the whole batch (all ranks): progress shows the run's throughput."""
        return getattr(self.source, "tokens_per_batch", None)

    def __len__(self):
        return len(self.source)

    def next_batch(self, rng):
        batch = self.source.next_batch(rng)
        parts = batch if isinstance(batch, tuple) else (batch,)
        rows = len(parts[0])
        if rows % self.size:
            raise ValueError(f"RankRows: a batch of {rows} rows cannot be shared equally by {self.size} ranks; "
                             f"use a batch size divisible by {self.size}")
        share = rows // self.size
        mine = tuple(np.asarray(part)[self.rank * share:(self.rank + 1) * share] for part in parts)  # (B/N, ...)
        return mine if isinstance(batch, tuple) else mine[0]


# ------------------------------------------------------------ starting the ranks
def launched_size() -> int:
    """How many ranks the MPI launcher started (1 outside one), read from its environment without
    starting MPI."""
    for name in LAUNCHER_SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


@cache
def data_parallel_world() -> World:
    """This process's ``World``: the MPI world when started by an MPI launcher with more than one rank
    (then the ranks' thread count is set, see the module docstring), else ``World()``; one per process."""
    if launched_size() == 1:
        return World()
    MPI = import_optional("mpi4py.MPI", "training under mpirun")  # starts MPI (MPI_Init)
    world = World(MPI.COMM_WORLD)
    if not any(name in os.environ for name in THREAD_VARIABLES):
        local = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED).Get_size()  # ranks on this machine
        try:
            from ..kernels import set_num_threads

            set_num_threads(max(1, usable_cores() // local))
        except ImportError:  # no threadpoolctl: BLAS keeps its own count (set OMP_NUM_THREADS instead)
            pass
    return world


def find_mpiexec() -> str:
    """The ``mpiexec`` of this Python's environment (the mpich wheel installs it beside ``python``), else
    the first on ``PATH``; an ImportError naming the mpi extra if there is none."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "mpiexec"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("mpiexec")
    if found is None:
        raise ImportError(f"--nproc needs an MPI launcher (mpiexec), and none is installed: {install_hint('mpi4py')}",
                          name="mpi4py")
    return found


def launch(nproc: int, arguments: list) -> None:
    """Run ``python -m tinytransformer ARGUMENTS`` as ``nproc`` MPI ranks under ``mpiexec`` and wait for them.
    If they fail, they have said why (rank by rank): this process leaves with their exit status (SystemExit).
    Needs the mpi extra: an ImportError naming it otherwise."""
    import_optional("mpi4py", "--nproc")
    if launched_size() > 1:
        raise ValueError(f"nproc {nproc}: this process is already one of {launched_size()} MPI ranks; start "
                         "either with mpirun -n N or with --nproc N, not both")
    command = [find_mpiexec(), "-n", str(nproc), sys.executable, "-m", "tinytransformer", *arguments]
    status = subprocess.run(command).returncode
    if status:
        raise SystemExit(status)
