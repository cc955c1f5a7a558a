"""How much memory this machine (or its container) has, so a setting that implies more fails naming itself
before any work, instead of as an allocation failure minutes in."""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")  # cgroup v2: a container's limit, below the host's memory


class MemoryLimitError(ValueError):
    """A setting implies more memory than this machine has; the message names the setting and both sizes."""


def available_memory_bytes() -> int | None:
    """Physical memory, or the container's limit where that is lower; None where neither can be read."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        total = None
    try:
        limit = int(CGROUP_LIMIT.read_text().strip())  # "max" (no limit) fails int()
    except (OSError, ValueError):
        return total
    return limit if total is None else min(total, limit)


def check_fits_memory(nbytes: int, setting: str) -> None:
    """Refuse `setting` when what it implies (`nbytes`, a lower bound) exceeds this machine's memory."""
    available = available_memory_bytes()
    if available is not None and nbytes > available:
        raise MemoryLimitError(f"{setting} needs at least {_gib(nbytes)} of memory; this machine has "
                               f"{_gib(available)}: lower it")


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.1f} GiB"
