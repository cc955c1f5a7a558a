"""How many threads torch may use: the CPUs this process may actually run on, or a deployment setting.

torch defaults to one intra-op thread per core of the machine, whatever the process is allowed: in a
container limited to 2 CPUs on a 64-core host it starts 64 threads, and on a busy machine its threads
oversubscribe the cores and every parallel region waits for a descheduled thread (a training fell from
27.8 to 0.18 steps/s). So the count follows the process's CPU affinity and its cgroup CPU quota, or
`GAN_TORCH_THREADS` when set; `OMP_WAIT_POLICY=PASSIVE` (set in `gan_assets/__init__.py` before torch is
imported) makes idle OpenMP threads sleep instead of spinning on a core another process needs.
"""

from __future__ import annotations

import math
import os
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
