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

Free cores are not the whole answer: a second thread pays only where the work
between two hand-offs is large. Per operation, the kernels decide by size
(Numba kernels run serially under ``jit.PARALLEL_MIN_SIZE`` elements,
``jit.ParallelKernel``; OpenBLAS runs its smallest products on one thread); per
model, ``AdaptiveThreads`` times a few steps at each count it may use and keeps
the fastest (on this machine a step of config A is faster on one thread than on
two, config B's on two).
"""

import os
import time

from .backend import set_num_threads

PROC_STAT = "/proc/stat"
# The thread counts a user may have chosen in the environment (read by the BLAS and Numba as they load)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
INTERVAL = 2.0  # seconds between two looks at the machine: long against /proc/stat's 10 ms ticks
FIRST_INTERVAL = 0.5  # the first look comes sooner: a run that starts beside a busy program (2 threads there ran
# 8.6x slower than alone, measured) should not spend its first 2 s on a core it shares (2% error at 10 ms ticks)
TRIAL_STEPS = 3  # steps timed at each thread count in a trial (after one not counted)


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
    for var in THREAD_VARIABLES:
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
    """Keep the thread count at the fastest one among the cores that other programs leave idle.

    Two questions, answered while training runs:

    1. How many cores are free? Every ``interval`` seconds (the first time after
       ``first_interval``) ``update`` reads the machine (see the module docstring):
       ``cap`` = the cores others leave idle.
    2. Does a second thread pay? Not always: on a small model each product is too
       short for two threads to repay the hand-off (config A here: 49 ms per step on
       one thread, 58 ms on two). So whenever ``cap`` changes (and at the start),
       a trial runs ``trial_steps`` steps at each count from ``cap`` down to 1 (the
       first step after each switch not counted: it pays for waking threads), and
       the count with the smallest median step time is kept.

    ``update(step_seconds)`` is cheap enough to call after every training step,
    with that step's wall time; without times no trial can finish and the count
    stays at ``cap``. ``threads`` is the count in use; ``history`` lists
    ``(seconds since start, others, cap)`` for every look and ``trials`` each
    finished trial's ``{count: median seconds}``, for a benchmark or lesson to print.
    """

    def __init__(self, max_threads=None, interval=INTERVAL, trial_steps=TRIAL_STEPS, path=PROC_STAT,
                 clock=time.monotonic, cpu_clock=time.process_time, first_interval=FIRST_INTERVAL):
        self.cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(usable_cores()))
        self.max_threads = default_max_threads() if max_threads is None else max_threads
        if isinstance(self.max_threads, bool) or not isinstance(self.max_threads, int) or self.max_threads < 1:
            raise ValueError(f"AdaptiveThreads: max_threads must be a positive int, got {max_threads!r}")
        self.interval, self.trial_steps, self.path = interval, trial_steps, path
        self.first_interval = min(first_interval, interval)
        self.clock, self.cpu_clock = clock, cpu_clock
        self.start = clock()
        self.threads = None
        self.history, self.trials = [], []
        self._last = self._look()
        self._begin(self.max_threads)

    def _look(self):
        busy = busy_seconds(self.cores, self.path)
        return None if busy is None else (self.clock(), busy, self.cpu_clock())

    def others(self, previous, now) -> float:
        """Cores' worth of CPU that other processes used between two looks."""
        wall = now[0] - previous[0]
        return max(0.0, ((now[1] - previous[1]) - (now[2] - previous[2])) / wall)

    def _use(self, count):
        if count != self.threads:
            set_num_threads(count)
            self.threads = count

    def _begin(self, cap):
        """A new cap: try every count from ``cap`` down to 1 (a cap of 1 leaves nothing to try)."""
        self.cap = cap
        self._pending = list(range(cap, 0, -1)) if cap > 1 else []
        self._times = {}
        self._use(cap)

    def _record(self, step_seconds):
        """One step's time at the count on trial; the next count, or the winner, once enough are in."""
        times = self._times.setdefault(self.threads, [])
        times.append(step_seconds)
        if len(times) <= self.trial_steps:  # the first of each count is its warm-up, not counted
            return
        self._pending.remove(self.threads)
        if self._pending:
            self._use(self._pending[0])
            return
        medians = {count: sorted(t[1:])[len(t[1:]) // 2] for count, t in self._times.items()}
        self.trials.append(medians)
        self._use(min(medians, key=medians.get))

    def update(self, step_seconds=None) -> int:
        """After a step of ``step_seconds``: record it if a trial runs, look at the machine if ``interval``
        has passed, and return the thread count to use for the next step."""
        if step_seconds is not None and self._pending:
            self._record(step_seconds)
        wait = self.first_interval if not self.history else self.interval
        if self._last is None or self.clock() - self._last[0] < wait:
            return self.threads
        now = self._look()
        others = self.others(self._last, now)
        self._last = now
        cap = max(1, min(self.max_threads, round(len(self.cores) - others)))
        self.history.append((now[0] - self.start, others, cap))
        if cap != self.cap:
            self._begin(cap)
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
