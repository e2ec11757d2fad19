"""How many threads to use on a machine that other programs share: ``AdaptiveThreads``.

A matrix product on two threads is split into two halves, one per thread, and
finishes when the slower half does. Alone on two cores that is nearly twice as
fast as one thread. Beside a busy program, one of our threads shares its core
and runs at half speed, the other waits for it at every hand-off, and a step
does worse than on one thread. Measured on this project's 2-core machine,
beside one busy process (a Python spin loop): a 2-thread training run took
2.2x its time alone (PyTorch's 3.2x), a 1-thread run was unaffected.

So the default is to use the cores nobody else is using. Every ``interval``
seconds ``update()`` reads how much CPU time the whole machine spent since the
last look (Linux's /proc/stat, per core, only the cores this process may run
on) and subtracts our own (``time.process_time``, all our threads):

    others = (busy time of our cores - our CPU time) / wall time     (in cores)
    threads = clamp(round(cores - others), 1, max_threads)

A neighbour that takes a whole core leaves us one; one that wakes for 10% of
a core leaves us both. Two of our own processes (data-parallel ranks) see each
other as neighbours, which is right: each then runs on one thread. Where
/proc/stat does not exist (macOS, Windows) the count stays at ``max_threads``.

Which thread count a single operation uses is decided below this policy, per
operation size: Numba kernels run serially under ``jit.PARALLEL_MIN_SIZE``
elements (``jit.ParallelKernel``), and OpenBLAS runs small products on one
thread. ``AdaptiveThreads`` sets the upper bound they work within.
"""

import os
import time

from .backend import set_num_threads

PROC_STAT = "/proc/stat"
INTERVAL = 2.0  # seconds between two looks at the machine: long against /proc/stat's 10 ms ticks


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def default_max_threads() -> int:
    """The most threads the default may use: the usable cores, fewer where the user said so.

    ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` (read by the BLAS when
    it loads) and ``NUMBA_NUM_THREADS`` (the size of Numba's pool) are the user's
    choice: the smallest one set is the cap.
    """
    limit = usable_cores()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) >= 1:
            limit = min(limit, int(value))
    return limit


def busy_seconds(cores, path=PROC_STAT):
    """CPU seconds spent busy so far on ``cores`` (a set of core numbers), from /proc/stat; None without it.

    A line ``cpuN user nice system idle iowait irq softirq steal ...`` counts ticks
    of 1/SC_CLK_TCK s since boot. Busy is every field but idle and iowait; steal
    (time the hypervisor gave our virtual core to someone else) counts as busy,
    since we could not use it either.
    """
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            values = [int(v) for v in fields[:8]]
            ticks += sum(values) - values[3] - values[4]  # all but idle and iowait
    return ticks / os.sysconf("SC_CLK_TCK")


class AdaptiveThreads:
    """Keep the thread count at the number of cores that other programs leave idle.

    ``update()`` is cheap enough to call once per training step: it reads the
    machine at most every ``interval`` seconds and changes the threads (BLAS and
    Numba, through ``set_num_threads``) only when the count changes.
    ``threads`` is the count in use; ``history`` lists ``(seconds since start,
    others, threads)`` for every look, for a benchmark or a lesson to print.
    """

    def __init__(self, max_threads=None, interval=INTERVAL, path=PROC_STAT, clock=time.monotonic,
                 cpu_clock=time.process_time):
        self.cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(usable_cores()))
        self.max_threads = default_max_threads() if max_threads is None else max_threads
        if isinstance(self.max_threads, bool) or not isinstance(self.max_threads, int) or self.max_threads < 1:
            raise ValueError(f"AdaptiveThreads: max_threads must be a positive int, got {max_threads!r}")
        self.interval, self.path, self.clock, self.cpu_clock = interval, path, clock, cpu_clock
        self.start = clock()
        self.threads = self.max_threads
        self.history = []
        set_num_threads(self.threads)
        self._last = self._look()

    def _look(self):
        busy = busy_seconds(self.cores, self.path)
        return None if busy is None else (self.clock(), busy, self.cpu_clock())

    def others(self, previous, now) -> float:
        """Cores' worth of CPU that other processes used between two looks."""
        wall = now[0] - previous[0]
        return max(0.0, ((now[1] - previous[1]) - (now[2] - previous[2])) / wall)

    def update(self) -> int:
        """Look at the machine if ``interval`` has passed, set the threads, and return the count in use."""
        if self._last is None or self.clock() - self._last[0] < self.interval:
            return self.threads
        now = self._look()
        others = self.others(self._last, now)
        self._last = now
        wanted = max(1, min(self.max_threads, round(len(self.cores) - others)))
        if wanted != self.threads:
            set_num_threads(wanted)
            self.threads = wanted
        self.history.append((now[0] - self.start, others, wanted))
        return self.threads


def thread_policy(threads=None, world=None):
    """What ``train`` does with its ``--threads``: a fixed count, or (None) an ``AdaptiveThreads``.

    Returns the policy to ``update()`` once per step, or None when the count is
    fixed: ``threads`` given, or data-parallel ranks (``world.size > 1``), which
    ``training.distributed`` has already given cores / ranks threads each.
    Setting BLAS threads needs threadpoolctl (the fast extra): without it, an ImportError saying so.
    """
    if threads is not None:
        set_num_threads(threads)
        return None
    if world is not None and world.size > 1:
        return None
    return AdaptiveThreads()
