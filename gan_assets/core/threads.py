"""How many threads torch may use: the CPUs this process may actually run on, or a deployment setting.

torch defaults to one intra-op thread per core of the machine, whatever the process is allowed: in a
container limited to 2 CPUs on a 64-core host it starts 64 threads, and on a busy machine its threads
oversubscribe the cores and every parallel region waits for a descheduled thread (a training fell from
27.8 to 0.18 steps/s). So the count follows the process's CPU affinity and its cgroup CPU quota, less the
CPUs other processes are busy on right now (`adapt_to_load`, which the training loop calls through a
`LoadFollower` every quarter second), or `GAN_TORCH_THREADS` when set (then fixed). When other processes'
runnable threads fill every CPU (`follow_load` says *crowded*), one thread gets only a time share of a CPU and
more intra-op threads collapse, so the training loop splits its D steps across two threads instead
(core/concurrent_d.py), where the kernel shares the CPUs per thread (`shared_per_thread`).

Measured here (`benchmarks/bench_canonical.py --busy`): two bf16 trainings at once with 2 threads each ran
at 20 img/s apiece, with 1 thread each at ~1,300. `OMP_WAIT_POLICY=PASSIVE` (idle threads sleep) was no
cure: it cost 35-45% when quiet and collapsed under contention, so it is not set.

Why runnable threads, whatever their niceness, and not the CPU time others spent: niceness is no promise
of yielding. With autogroup scheduling (the kernel default on most distributions, and on this machine) nice
only ranks processes within one session; a nice-19 process started from another shell competes as an equal.
Here, nice-19 processes of other sessions took 55-75% of a CPU each against a nice-0 training's 33%, and a
two-thread training that had counted them as yielding (by their CPU time) fell to 88-530 img/s from 2,200,
where one thread kept ~1,600.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

THREADS_VARIABLE = "GAN_TORCH_THREADS"


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs granted by the cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), or None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup quota (rounded up)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    return max(1, min(cpus, math.ceil(limit)) if limit else cpus)


def thread_count(setting: int | str | None = None) -> int:
    """`setting` (or `GAN_TORCH_THREADS`) when given, else the CPUs available to this process."""
    value = setting if setting is not None else os.environ.get(THREADS_VARIABLE)
    if value in (None, "", "auto"):
        return available_cpus()
    count = int(value)
    if count < 1:
        raise ValueError(f"{THREADS_VARIABLE}={value!r}: the thread count must be a positive integer or 'auto'")
    return count


def configure_threads(setting: int | str | None = None) -> int:
    """Set torch's intra-op threads to `thread_count(setting)`; return the count."""
    count = thread_count(setting)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


def _stat_fields(stat: Path) -> list[str]:
    """A /proc stat file's fields after the command name: state, ppid, pgrp, session, ..."""
    return stat.read_text().rsplit(")", 1)[1].split()


_PF_KTHREAD = 0x00200000  # the kernel's flag for its own threads (include/linux/sched.h)


def _is_kernel_thread(fields: list[str]) -> bool:
    """By the flags field, not by session 0: inside a container whose session leader lives outside its PID
    namespace, ordinary processes (this one too) have session 0."""
    return len(fields) > 6 and int(fields[6]) & _PF_KTHREAD != 0


def _runnable_threads(process: Path) -> int:
    return sum(1 for task in (process / "task").iterdir() if _stat_fields(task / "stat")[0] == "R")


def runnable_elsewhere(proc: Path = Path("/proc")) -> int | None:
    """Threads of other processes that are runnable now (the kernel's count, less this process's own)."""
    try:
        running = int((proc / "loadavg").read_text().split()[3].split("/")[0])
        own = _runnable_threads(proc / "self")
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


def runnable_by_session(proc: Path = Path("/proc"), session: int | None = None,
                        own: int | None = None) -> tuple[int, int] | None:
    """Runnable threads of other processes (kernel threads aside), as (in this process's session, outside it);
    None when /proc cannot be listed."""
    session = os.getsid(0) if session is None else session
    own = os.getpid() if own is None else own
    try:
        processes = [entry for entry in proc.iterdir() if entry.name.isdigit() and int(entry.name) != own]
    except OSError:
        return None
    inside = outside = 0
    for process in processes:
        try:
            fields = _stat_fields(process / "stat")
            if _is_kernel_thread(fields):
                continue  # no session, no autogroup
            process_session = int(fields[3])
            runnable = _runnable_threads(process)
        except (OSError, ValueError, IndexError):
            continue  # it ended while we read it
        if process_session == session:
            inside += runnable
        else:
            outside += runnable
    return inside, outside


def shared_per_thread(proc: Path = Path("/proc")) -> bool:
    """Whether the kernel shares the CPUs between this process and its runnable neighbours per thread, so that a
    second thread of ours adds CPU time: autogroup scheduling is off, or most runnable neighbour threads are in
    this process's session. With autogroup on, a neighbour of another session (another shell) gets its session's
    share whatever our thread count, and so does ours: there a second thread only adds waiting."""
    try:
        autogroup = (proc / "sys" / "kernel" / "sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        autogroup = False
    if not autogroup:
        return True
    counts = runnable_by_session(proc)
    return counts is not None and counts[0] > counts[1]


def adapt_to_load() -> int:
    """Re-pick the thread count for the CPUs left free by other processes (at least one); a fixed
    `GAN_TORCH_THREADS` is kept. Cheap (two /proc reads): loops call it through a `LoadFollower`."""
    return follow_load()[0]


def follow_load() -> tuple[int, bool]:
    """`adapt_to_load`, and whether the machine is crowded: other processes' runnable threads fill every CPU
    this process may use, so one thread of ours gets only a time share of a CPU (never with a fixed setting)."""
    if os.environ.get(THREADS_VARIABLE) not in (None, "", "auto"):
        return configure_threads(), False
    others, cpus = runnable_elsewhere(), available_cpus()
    count = cpus if others is None else max(1, cpus - others)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count, others is not None and others >= cpus


# Seconds between thread-count checks in a loop: a step-count interval let a training that had just been joined by
# a CPU-bound neighbour spend seconds in the collapsed (oversubscribed) regime, where one step takes 10x longer.
ADAPT_SECONDS = 0.25
# Seconds between looks at who the crowding neighbours are (`shared_per_thread` lists /proc: ~1 ms per 100 processes).
SESSION_SECONDS = 2.0


class LoadFollower:
    """Call it once per step: it re-picks the thread count (`follow_load`) at most every `interval` seconds, and
    at its first call. It returns whether a second thread would add CPU time at the last check: the machine is
    crowded and its neighbours share the CPUs per thread (`shared_per_thread`, looked at every `SESSION_SECONDS`
    while crowded). Between checks it costs one clock read."""

    def __init__(self, interval: float = ADAPT_SECONDS, clock=time.monotonic) -> None:
        self.interval, self.clock, self.next_check = interval, clock, -math.inf
        self.per_thread, self.next_session_check = False, -math.inf
        self.crowded = False

    def __call__(self) -> bool:
        now = self.clock()
        if now >= self.next_check:
            _, crowded = follow_load()
            if crowded and now >= self.next_session_check:
                self.per_thread, self.next_session_check = shared_per_thread(), now + SESSION_SECONDS
            self.crowded = crowded and self.per_thread
            self.next_check = now + self.interval
        return self.crowded
