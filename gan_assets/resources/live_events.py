"""A training's progress on its asset page while it trains: Dagster asset observations.

Each report is an `AssetObservation` of `gan_checkpoints` (its partition) with numeric metadata: the step, the
window's losses, D(x) and D(G(z)), steps/s and the ETA. The UI lists them under the asset's Events as they arrive,
and its Overview plots every numeric metadata key across events (Metadata: Plots, axis Events), so the curves grow
during the run.
Each checkpoint adds its fixed-z grid, shown in place. Reports come at most every `LIVE_SECONDS` and at least every
30 s (the loop's heartbeat, core/training/loop.py), however long a logging window is.

In process the observer is called on the step's own thread; for a trainer in another process, `live_events_from`
follows the file that trainer writes (core/telemetry/live_file.py) on a thread and reports what it reads.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg

from gan_assets.core.png import markdown_png, png_bytes
from gan_assets.core.telemetry.live_file import LiveCheckpoint, LiveFileReader
from gan_assets.core.training.observers import CheckpointEvent, Progress, RunObserver
from gan_assets.core.training.run import duration
from gan_assets.resources.ui_images import served_image

LIVE_SECONDS = 10.0  # the shortest gap between two progress reports: a fast GPU run must not flood the event log
POLL_SECONDS = 1.0  # how often the file of a trainer in another process is read


class DagsterLive(RunObserver):
    """Reports progress and checkpoint grids as observations of the asset being materialized."""

    def __init__(self, context: dg.AssetExecutionContext, min_seconds: float | None = None) -> None:
        self.context, self.last = context, -math.inf
        self.min_seconds = LIVE_SECONDS if min_seconds is None else min_seconds

    def progress(self, progress: Progress) -> None:
        now, last_step = time.monotonic(), progress.step == progress.total_steps
        if now - self.last < self.min_seconds and progress.complete and not last_step:
            return
        self.last = now
        self._observe(f"training: step {progress.step:,} of {progress.total_steps:,}", progress_metadata(progress))

    def checkpoint(self, event: CheckpointEvent) -> None:
        grid = png_bytes(event.grid) if event.grid is not None else None
        self.report_checkpoint(LiveCheckpoint(step=event.entry.step, name=event.entry.name, grid_png=grid))

    def report_checkpoint(self, checkpoint: LiveCheckpoint) -> None:
        metadata: dict = {"step": checkpoint.step, "checkpoint": checkpoint.name}
        if checkpoint.grid_png is not None:
            alt = f"fixed-z samples at step {checkpoint.step}"
            context = self.context
            inline = served_image(context.instance, checkpoint.grid_png, context.partition_key, "live_grid", alt)
            metadata["samples"] = dg.MetadataValue.md(inline or markdown_png(checkpoint.grid_png, alt))
        self._observe(f"checkpoint {checkpoint.name} written", metadata)

    def _observe(self, description: str, metadata: dict) -> None:
        context = self.context
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, partition=context.partition_key,
                                              description=description, metadata=metadata))


def progress_metadata(progress: Progress) -> dict:
    """Plain numbers (Dagster plots them), rounded to what they mean, and the ETA in words."""
    metadata: dict = {"step": progress.step, "percent_done": round(100 * progress.step / progress.total_steps, 1)}
    metadata |= {name: round(value, 4) for name, value in progress.stats.items() if math.isfinite(value)}
    if math.isfinite(progress.steps_per_second):
        metadata["steps_per_second"] = round(progress.steps_per_second, 2)
    if math.isfinite(progress.eta_seconds):
        metadata["eta_seconds"] = round(progress.eta_seconds)
        metadata["eta"] = duration(progress.eta_seconds)
    if not progress.complete:
        metadata["window"] = "partial (a heartbeat: the steps of this logging window so far)"
    return metadata


@contextmanager
def live_events_from(folder: Path, live: DagsterLive, poll_seconds: float = POLL_SECONDS) -> Iterator[None]:
    """While the body runs (a trainer in another process), report the events it appends to `folder`'s live file;
    the events still unread when the body ends are reported after it, on this thread."""
    reader, stop = LiveFileReader(folder), threading.Event()
    warned = threading.Event()

    def report_new() -> None:
        try:
            for event in reader.read_new():
                live.report_checkpoint(event) if isinstance(event, LiveCheckpoint) else live.progress(event)
        except Exception as err:  # noqa: BLE001 - a report lost is no reason to fail the training
            if not warned.is_set():
                warned.set()
                live.context.log.warning(f"live progress from {folder} not reported ({type(err).__name__}: {err})")

    def follow() -> None:
        while not stop.wait(poll_seconds):
            report_new()

    thread = threading.Thread(target=follow, name="gan-live-events", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        report_new()
