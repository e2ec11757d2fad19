"""AdaptiveThreads: the thread count follows the cores other processes leave idle."""

import os

import pytest

from tinytransformer.kernels import threads as th

CORES = {0, 1}
TICKS = os.sysconf("SC_CLK_TCK")


class FakeMachine:
    """A /proc/stat file and two clocks that a test moves by hand."""

    def __init__(self, tmp_path):
        self.path = tmp_path / "stat"
        self.wall = 0.0
        self.ours = 0.0  # our CPU seconds
        self.busy = [0.0, 0.0]  # busy seconds per core, ours included
        self.write()

    def write(self):
        lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
        for core, busy in enumerate(self.busy):  # user, nice, system, idle, iowait, irq, softirq, steal
            user = int(round(busy * TICKS))
            lines.append(f"cpu{core} {user} 0 0 {10**6} 0 0 0 0 0 0")
        self.path.write_text("\n".join(lines + ["intr 0"]) + "\n")

    def run(self, seconds, ours, others):
        """``seconds`` pass; we use ``ours`` cores, other processes ``others`` cores."""
        self.wall += seconds
        self.ours += ours * seconds
        total = (ours + others) * seconds
        self.busy = [b + total / 2 for b in self.busy]
        self.write()


@pytest.fixture
def machine(tmp_path, monkeypatch):
    monkeypatch.setattr(th.os, "sched_getaffinity", lambda pid: set(CORES), raising=False)
    calls = []
    monkeypatch.setattr(th, "set_num_threads", calls.append)
    m = FakeMachine(tmp_path)
    m.calls = calls
    return m


def policy(machine, **kw):
    kw.setdefault("first_interval", 2.0)  # every look 2 s apart, unless a test says otherwise
    return th.AdaptiveThreads(max_threads=2, path=machine.path, clock=lambda: machine.wall,
                              cpu_clock=lambda: machine.ours, **kw)


def test_alone_keeps_every_core(machine):
    p = policy(machine)
    assert p.threads == 2 and machine.calls == [2]
    for _ in range(5):
        machine.run(2.5, ours=1.9, others=0.05)
        assert p.update() == 2
    assert machine.calls == [2]  # never changed, so never set again


def test_a_busy_neighbour_takes_a_thread_and_gives_it_back(machine):
    p = policy(machine)
    machine.run(2.5, ours=1.0, others=1.0)  # a spin loop holds a core
    assert p.update() == 1
    assert machine.calls == [2, 1]
    machine.run(2.5, ours=1.0, others=1.0)
    assert p.update() == 1
    machine.run(2.5, ours=1.0, others=0.0)  # the neighbour finished
    assert p.update() == 2
    assert machine.calls == [2, 1, 2]
    assert [round(o, 2) for _, o, _ in p.history] == [1.0, 1.0, 0.0]


def test_a_trial_keeps_the_faster_count(machine):
    p = policy(machine, trial_steps=3)
    speed = {2: 0.058, 1: 0.049}  # config A here: one thread is faster
    seen = []
    for _ in range(8):
        seen.append(p.threads)
        p.update(speed[p.threads])
    assert seen == [2, 2, 2, 2, 1, 1, 1, 1]  # 1 + 3 steps at each count, from the cap down
    assert p.threads == 1 and p.trials == [{2: 0.058, 1: 0.049}]
    for _ in range(5):  # the trial is over: no more switching
        p.update(0.2)
    assert p.threads == 1 and machine.calls == [2, 1]


def test_a_trial_ignores_each_counts_first_step(machine):
    p = policy(machine, trial_steps=2)
    for seconds in (9.0, 1.0, 1.0, 0.1, 1.5, 1.5):  # 2 threads: warm-up 9 s, then 1 s; 1 thread: 1.5 s
        p.update(seconds)
    assert p.trials == [{2: 1.0, 1: 1.5}] and p.threads == 2


def test_a_new_cap_starts_a_new_trial(machine):
    p = policy(machine, trial_steps=1)
    for seconds in (1, 1, 1, 2):
        p.update(seconds)
    assert p.threads == 2 and len(p.trials) == 1
    machine.run(2.5, ours=1.0, others=1.0)
    p.update(1.0)
    assert p.cap == 1 and p.threads == 1  # one core left: nothing to try
    machine.run(2.5, ours=1.0, others=0.0)
    p.update(1.0)
    assert p.cap == 2 and p.threads == 2  # both free again: tried from the top
    for seconds in (1, 3, 1, 1):
        p.update(seconds)
    assert p.trials[-1] == {2: 3, 1: 1} and p.threads == 1


def test_a_light_neighbour_is_ignored(machine):
    p = policy(machine)
    machine.run(2.5, ours=1.8, others=0.2)
    assert p.update() == 2


def test_looks_at_most_every_interval(machine):
    p = policy(machine, interval=2.0)
    machine.run(1.0, ours=1.0, others=1.0)
    assert p.update() == 2 and p.history == []  # too soon: no look
    machine.run(1.5, ours=1.0, others=1.0)
    assert p.update() == 1 and len(p.history) == 1


def test_the_first_look_comes_sooner(machine):
    p = policy(machine, first_interval=0.5, interval=2.0)
    machine.run(0.6, ours=1.0, others=1.0)  # started beside a busy program
    assert p.update(5.0) == 1 and len(p.history) == 1
    machine.run(0.6, ours=1.0, others=0.0)
    assert p.update(1.0) == 1 and len(p.history) == 1  # later looks keep the longer interval


def test_never_below_one_thread(machine):
    p = policy(machine)
    machine.run(2.5, ours=0.5, others=3.0)  # an oversubscribed machine
    assert p.update() == 1


def test_without_proc_stat_the_count_stays(machine, tmp_path):
    p = th.AdaptiveThreads(max_threads=2, path=tmp_path / "missing", clock=lambda: machine.wall)
    machine.run(5.0, ours=1.0, others=1.0)
    assert p.update() == 2 and p.history == []


def test_busy_seconds_reads_only_our_cores(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(f"cpu  9 9 9 9 9 9 9 9\ncpu0 {TICKS} 0 0 500 7 0 0 0\ncpu1 0 {TICKS} 0 1 0 0 0 {TICKS}\n"
                    f"cpu2 {100 * TICKS} 0 0 0 0 0 0 0\nctxt 5\n")
    assert th.busy_seconds({0, 1}, stat) == pytest.approx(3.0)  # idle and iowait left out, steal counted
    assert th.busy_seconds({0}, stat) == pytest.approx(1.0)
    assert th.busy_seconds({0}, tmp_path / "missing") is None


def test_the_environment_caps_the_default(monkeypatch):
    monkeypatch.setattr(th, "usable_cores", lambda: 8)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    assert th.default_max_threads() == 8
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
    assert th.default_max_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_max_threads(bad, machine):
    with pytest.raises(ValueError, match="max_threads"):
        policy_bad = th.AdaptiveThreads(max_threads=bad, path=machine.path)
        del policy_bad


class FakeWorld:
    def __init__(self, size):
        self.size = size


def test_thread_policy(monkeypatch):
    calls = []
    monkeypatch.setattr(th, "set_num_threads", calls.append)
    assert th.thread_policy(1) is None and calls == [1]  # a fixed count is set once, nothing to update
    assert th.thread_policy(None, FakeWorld(2)) is None and calls == [1]  # ranks: distributed.py set theirs
    policy = th.thread_policy(None, FakeWorld(1))
    assert isinstance(policy, th.AdaptiveThreads) and calls[-1] == policy.max_threads


def test_train_updates_the_policy_every_step(tmp_path, monkeypatch):
    from tinytransformer.tasks.language_model import LanguageModelConfig, run

    updates = []
    monkeypatch.setattr(th.AdaptiveThreads, "update", lambda self, seconds: updates.append(seconds) or self.threads)
    config = LanguageModelConfig(data="pydoc", n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4,
                                 max_iters=5, eval_interval=5, eval_iters=1, out=str(tmp_path / "run"))
    trainer = run(config, progress=False, log=lambda *_: None)
    assert isinstance(trainer.threads, th.AdaptiveThreads) and len(updates) == 5
    assert all(0 < s < 60 for s in updates)  # each step's wall time
