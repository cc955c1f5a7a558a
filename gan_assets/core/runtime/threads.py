"""How many threads torch may use: the CPUs this process may run on, less those busy now, or a fixed setting.

torch defaults to one intra-op thread per core of the machine, whatever the process is allowed: in a container
limited to 2 CPUs on a 64-core host it starts 64 threads, and on a busy machine its threads oversubscribe the
cores, so every parallel region waits for a descheduled thread (a collapse, not a slowdown). So the count is the
CPUs the process may use (its affinity mask and cgroup quota, as joblib computes them) shared between the ranks on
this node, less the threads other processes have runnable right now, re-checked while a loop runs (`LoadFollower`),
or the user's fixed setting. docs/measurements.md has the busy-machine figures and the command that measures them.

Which setting wins, first match:
1. `GAN_TORCH_THREADS=N`: N, fixed. This project's own knob, named for torch's threads alone and set only on
   purpose, so it beats every other source (`GAN_TORCH_THREADS=auto` asks for the load-following count below even
   when OMP_NUM_THREADS is set).
2. `OMP_NUM_THREADS=N` when this process is not one of several local ranks: N, fixed (torch read it at start-up;
   following the load would silently undo the user's choice). Under torchrun with several ranks on this node
   (`LOCAL_WORLD_SIZE` > 1) it is ignored: torchrun sets it to 1 in every rank unless the user did, so a rank
   cannot tell a choice from that default. Set `GAN_TORCH_THREADS` to fix a rank's count.
3. Otherwise this process's share of the CPUs, the available CPUs divided by the local ranks (at least one), less
   what other processes keep busy, re-checked as loops run. Without the division each of N ranks would take every
   CPU: N times too many threads.
A CUDA (or other accelerator) run takes its count once, from 1-3 with no load to follow: its host threads only
feed the device, so scanning /proc while it trains buys nothing.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from joblib import cpu_count

THREADS_VARIABLE = "GAN_TORCH_THREADS"
OMP_VARIABLE = "OMP_NUM_THREADS"
LOCAL_RANKS_VARIABLE = "LOCAL_WORLD_SIZE"  # set by torchrun in every rank: the ranks on this node


def available_cpus() -> int:
    """CPUs this process may run on: the affinity mask, capped by the cgroup CPU quota (rounded up).

    joblib (loky) reads both, and LOKY_MAX_CPU_COUNT when set; a well-kept library instead of our own /sys parsing.
    """
    return max(1, cpu_count())


def local_ranks(environ: Mapping[str, str] = os.environ) -> int:
    """How many processes of this (torchrun) job share this node: `LOCAL_WORLD_SIZE`, else 1."""
    return max(1, int(environ.get(LOCAL_RANKS_VARIABLE) or 1))


def fixed_setting(environ: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """The user's fixed thread count as (variable, value), or None to follow the load (module docstring: who wins)."""
    value = environ.get(THREADS_VARIABLE, "")
    if value:
        return None if value == "auto" else (THREADS_VARIABLE, value)
    if environ.get(OMP_VARIABLE) and local_ranks(environ) == 1:
        return OMP_VARIABLE, environ[OMP_VARIABLE].split(",")[0]  # "4,2": OpenMP's per-nesting-level list
    return None


def cpu_share(cpus: int, environ: Mapping[str, str] = os.environ) -> int:
    """This rank's share of `cpus`: divided evenly between the ranks on this node, at least one."""
    return max(1, cpus // local_ranks(environ))


def thread_count(setting: int | str | None = None, environ: Mapping[str, str] = os.environ) -> int:
    """`setting` when given, else the user's fixed setting (`fixed_setting`), else this process's share of the CPUs
    available to it."""
    name, value = (THREADS_VARIABLE, setting) if setting is not None else fixed_setting(environ) or ("", "auto")
    if value in ("", "auto"):
        return cpu_share(available_cpus(), environ)
    if not str(value).isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r}: the thread count must be a positive integer or 'auto'")
    return int(value)


def configure_threads(setting: int | str | None = None, environ: Mapping[str, str] = os.environ) -> int:
    """Set torch's intra-op threads to `thread_count(setting)`; return the count."""
    return _set_threads(thread_count(setting, environ))


def _set_threads(count: int) -> int:
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


def adapt_to_load(device_type: str = "cpu", environ: Mapping[str, str] = os.environ) -> int:
    """Set the thread count and return it: on the CPU (`device_type` "cpu") this process's share of the CPUs less
    those other processes keep busy (at least one); a fixed setting, or a run on an accelerator, gets
    `thread_count()` without reading /proc. Cheap (two /proc reads): CPU loops call it through a `LoadFollower`."""
    if device_type != "cpu" or fixed_setting(environ) is not None:
        return configure_threads(environ=environ)
    cpus, others = available_cpus(), runnable_elsewhere()
    share = cpu_share(cpus, environ)
    # The other local ranks' threads are among `others`: the share caps the count, the load only lowers it (dividing
    # the free CPUs by the ranks would count the siblings twice).
    return _set_threads(share if others is None else max(1, min(share, cpus - others)))


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
