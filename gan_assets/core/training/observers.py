"""Who watches a training run while it trains: the Dagster UI, TensorBoard, an MLflow server.

A run tells its observers four things: it started (at which step, towards which), a logging window's statistics
with the rate and ETA, a heartbeat mid-window when a window takes long, and each checkpoint. The loop knows no
observer (it calls `TrainingCallbacks`, core/training/loop.py); `train_run` turns those calls into these events.

Telemetry never stops or fails a training: `Observers` fans each event out and turns an observer that raises into
one warning, after which that observer is switched off for the rest of the run. An observer that talks to a
server must not block either (core/telemetry/tracking.py queues its writes on a thread of its own).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from gan_assets.core.training.manifest import CheckpointEntry, RunManifest

HEARTBEAT_SECONDS = 30.0  # a window longer than this reports its statistics so far, so a watcher sees no silence


@dataclass(frozen=True)
class RunStart:
    run_dir: Path
    family: str  # model.family
    config: dict  # the effective config (ExperimentConfig.record())
    first_step: int  # 0 for a new run; the checkpoint's step for a resumed one
    total_steps: int


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    stats: dict[str, float]  # the window's means: loss_d, loss_g, d_x, d_g_z (a likelihood family's own names)
    steps_per_second: float  # since this process started training (NaN before the first timed step)
    eta_seconds: float
    complete: bool = True  # False: a heartbeat, the means of the window's steps so far (not in the history)

    @property
    def metrics(self) -> dict[str, float]:
        """The numbers a tracker plots: the statistics, the rate and the ETA."""
        return {**self.stats, "steps_per_second": self.steps_per_second, "eta_seconds": self.eta_seconds}


@dataclass
class CheckpointEvent:
    """A checkpoint the manifest now lists. `grid` is the checkpoint's fixed-z grid, drawn on first use only (and
    once for all observers) by the function the run's owner gave (core/telemetry/grids.py); None without one."""

    manifest: RunManifest
    entry: CheckpointEntry
    draw_grid: Callable[[RunManifest, CheckpointEntry], np.ndarray] | None = field(default=None, repr=False)

    @cached_property
    def grid(self) -> np.ndarray | None:
        return self.draw_grid(self.manifest, self.entry) if self.draw_grid is not None else None


class RunObserver:
    """Every event is optional: override what the observer uses."""

    def started(self, start: RunStart) -> None:
        pass

    def progress(self, progress: Progress) -> None:
        pass

    def checkpoint(self, event: CheckpointEvent) -> None:
        pass

    def finished(self, manifest: RunManifest) -> None:
        pass

    def close(self) -> None:
        """Flush and release (files, threads): called once, however the run ended."""


class Observers(RunObserver):
    """Fans events out to `observers`; one that raises is named in a warning through `log` and dropped."""

    def __init__(self, observers: list[RunObserver] | tuple[RunObserver, ...] = (), *,
                 draw_grid: Callable[[RunManifest, CheckpointEntry], np.ndarray] | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.observers, self.draw_grid, self.log = list(observers), draw_grid, log

    def __bool__(self) -> bool:
        return bool(self.observers)

    def _each(self, event: str, *args) -> None:
        for observer in list(self.observers):
            try:
                getattr(observer, event)(*args)
            except Exception as err:  # noqa: BLE001 - telemetry must never stop training
                self.observers.remove(observer)
                self.log(f"warning: telemetry {type(observer).__name__} failed on {event} ({type(err).__name__}: "
                         f"{err}); it is off for the rest of this run, training goes on")

    def started(self, start: RunStart) -> None:
        self._each("started", start)

    def progress(self, progress: Progress) -> None:
        self._each("progress", progress)

    def checkpoint(self, event: CheckpointEvent) -> None:
        if event.draw_grid is None:
            event.draw_grid = self.draw_grid
        self._each("checkpoint", event)

    def finished(self, manifest: RunManifest) -> None:
        self._each("finished", manifest)

    def close(self) -> None:
        self._each("close")


def as_observers(observer: RunObserver | None, log: Callable[[str], None]) -> Observers:
    """`observer` as a fault-isolating fan-out (None: nobody watches)."""
    if isinstance(observer, Observers):
        return observer
    return Observers([observer] if observer is not None else [], log=log)


class ProgressClock:
    """Steps per second and the ETA of a run, measured from the first step this process trains."""

    def __init__(self, first_step: int, total_steps: int) -> None:
        self.first_step, self.total_steps, self.started = first_step, total_steps, time.perf_counter()

    def progress(self, step: int, stats: dict[str, float], complete: bool = True) -> Progress:
        done, seconds = step - self.first_step, time.perf_counter() - self.started
        rate = done / seconds if done > 0 and seconds > 0 else float("nan")
        eta = (self.total_steps - step) / rate if rate == rate and rate > 0 else float("nan")
        return Progress(step=step, total_steps=self.total_steps, stats={k: v for k, v in stats.items() if k != "step"},
                        steps_per_second=rate, eta_seconds=eta, complete=complete)
