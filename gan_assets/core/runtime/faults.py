"""Deterministic crash points, for the fault tests that SIGKILL a real run at chosen moments.

`GAN_CRASH_AT="<point>:<n>"` makes this process SIGKILL itself the n-th time it reaches `crash_point(point)`
(a real kill: no cleanup, no `finally`, exactly what the OOM killer or a power cut leaves). Unset, each call
is one dict lookup. Points: `train_step` (after each training step), `atomic_write` (a file fully written
under its temp name, not yet renamed: inside a checkpoint save), `score_checkpoint`, `gallery_checkpoint`.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("GAN_CRASH_AT", "")
_POINT, _, _COUNT = _SPEC.partition(":")
_seen = 0


def crash_point(point: str) -> None:
    global _seen
    if point != _POINT:
        return
    _seen += 1
    if _seen == int(_COUNT or 1):
        os.kill(os.getpid(), signal.SIGKILL)
