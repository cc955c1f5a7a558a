"""The watchers a training gets: the same set in the Dagster step's own process and on a trainer's rank 0.

TensorBoard event files always (local files, a few kilobytes per window: `make tensorboard` shows every run), MLflow
where a tracking URI is configured, and whatever the launcher adds (the Dagster asset page in process, the live file
a launching step follows from another process). One grid drawer serves them all, drawing each checkpoint once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from gan_assets.core.telemetry.grids import live_grid_drawer
from gan_assets.core.telemetry.tensorboard import TensorBoardObserver
from gan_assets.core.telemetry.tracking import MlflowObserver, TrackingSettings
from gan_assets.core.training.observers import Observers, RunObserver
from gan_assets.core.training.run import RunInputs


def training_observers(run_dir: Path, inputs: RunInputs, *, tracking: TrackingSettings | None = None,
                       tags: dict[str, str] | None = None, extra: Sequence[RunObserver] = (),
                       log: Callable[[str], None] = print) -> Observers:
    """`extra` first (the page a user watches hears first), then TensorBoard, then MLflow when `tracking` is set;
    `tags` lead from the MLflow run back to the pipeline."""
    watchers: list[RunObserver] = [*extra, TensorBoardObserver(run_dir)]
    if tracking is not None:
        watchers.append(MlflowObserver(tracking, tags, log=log))
    return Observers(watchers, draw_grid=live_grid_drawer(inputs), log=log)
