"""How many threads torch may use: the CPUs this process may run on, less those busy now, or a fixed setting.

torch defaults to one intra-op thread per core of the machine, whatever the process is allowed: in a container
limited to 2 CPUs on a 64-core host it starts 64 threads, and on a busy machine its threads oversubscribe the
cores, so every parallel region waits for a descheduled thread (a collapse, not a slowdown). So the count is the
CPUs the process may use (its affinity mask and cgroup quota, as joblib computes them) less the threads other
processes have runnable right now, re-checked while a loop runs (`LoadFollower`), or `GAN_TORCH_THREADS` when
set (then fixed). docs/measurements.md has the busy-machine figures and the command that measures them.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from joblib import cpu_count

THREADS_VARIABLE = "GAN_TORCH_THREADS"


def available_cpus() -> int:
    """CPUs this process may run on: the affinity mask, capped by the cgroup CPU quota (rounded up).

    joblib (loky) reads both, and LOKY_MAX_CPU_COUNT when set; a well-kept library instead of our own /sys parsing.
    """
    return max(1, cpu_count())


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


def _runnable_threads(process: Path) -> int:
    return sum(1 for task in (process / "task").iterdir()
               if (task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "R")


def runnable_elsewhere(proc: Path = Path("/proc")) -> int | None:
    """Threads of other processes that are runnable now (the kernel's count, less this process's own)."""
    try:
        running = int((proc / "loadavg").read_text().split()[3].split("/")[0])
        own = _runnable_threads(proc / "self")
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


def adapt_to_load() -> int:
    """Set the thread count to the CPUs left free by other processes (at least one) and return it; a fixed
    `GAN_TORCH_THREADS` is kept. Cheap (two /proc reads): loops call it through a `LoadFollower`."""
    if os.environ.get(THREADS_VARIABLE) not in (None, "", "auto"):
        return configure_threads()
    others, cpus = runnable_elsewhere(), available_cpus()
    count = cpus if others is None else max(1, cpus - others)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


# Seconds between thread-count checks in a loop: a step-count interval let a training that had just been joined by
# a CPU-bound neighbour spend seconds in the collapsed (oversubscribed) regime, where one step takes 10x longer.
ADAPT_SECONDS = 0.25


class LoadFollower:
    """Call it once per step: it re-picks the thread count (`adapt_to_load`) at its first call and then at most
    every `interval` seconds, and returns the count in force. Between checks it costs one clock read."""

    def __init__(self, interval: float = ADAPT_SECONDS, clock=time.monotonic) -> None:
        self.interval, self.clock, self.next_check = interval, clock, -math.inf
        self.count = torch.get_num_threads()

    def __call__(self) -> int:
        now = self.clock()
        if now >= self.next_check:
            self.count, self.next_check = adapt_to_load(), now + self.interval
        return self.count
