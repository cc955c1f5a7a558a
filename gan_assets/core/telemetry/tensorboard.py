"""TensorBoard event files of a run: live training curves, each checkpoint's grid, and the checkpoints' scores.

Everything lies under `<run_dir>/tensorboard/`, so `tensorboard --logdir <storage_root>/experiments` (`make
tensorboard`) shows every run of every experiment, named by its path. Training curves are written by
`TensorBoardObserver` while the run trains; the scores, written after a (re)scoring by `log_checkpoint_scores`, go
to their own subfolder `tensorboard/scores/`, rewritten whole each time, so a rescore never doubles a point.

A resumed run restarts at its latest checkpoint's step T and logs T+1.. again. Its writer opens with a
`SessionLog.START` at step T+1 (torch's `purge_step`): TensorBoard (RustBoard, and the Python loader of
`--load_fast=false`) then drops the scalars and images that earlier files hold at a step >= T+1, the crashed
process's steps past its checkpoint, and the curves continue without a duplicated step. A new run and each scoring
instead delete their folder's old event files (the Python loader never purges text) and open with a START at step 0,
so a running TensorBoard drops what it already showed as it reads the new file (RustBoard does; the Python loader
keeps the old points until restarted, as it cannot read on past a deleted file).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from torch.utils.tensorboard import SummaryWriter

from gan_assets.core.evaluation.scoring import REAL_FLOOR
from gan_assets.core.training.observers import CheckpointEvent, Progress, RunObserver, RunStart

TENSORBOARD_DIR = "tensorboard"  # under the run directory
SCORES_DIR = "scores"  # under TENSORBOARD_DIR: rewritten whole on each scoring
GRID_TAG = "samples/fixed_z"
CONFIG_TAG = "config"
FLUSH_SECONDS = 30  # the writer thread's flush between checkpoints: a live view lags by at most a heartbeat
SPEED_TAGS = {"steps_per_second": "speed/steps_per_second", "eta_seconds": "speed/eta_seconds"}


def purge_step(first_step: int) -> int:
    """The step the writer's START marks: the reader drops earlier files' events at this step and after. A run
    resumed from step T re-logs T+1.., so those go; a new run (T = 0) drops everything an earlier attempt left."""
    return first_step + 1 if first_step else 0


class TensorBoardObserver(RunObserver):
    """Writes a run's curves (complete logging windows), checkpoint grids and, on a new run, its config into
    `run_dir/tensorboard/`. SummaryWriter queues events for its own thread: a logging window costs the training
    thread a few queued scalars, a checkpoint the PNG encoding of one grid and a flush."""

    def __init__(self, run_dir: Path) -> None:
        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self.writer: SummaryWriter | None = None

    def started(self, start: RunStart) -> None:
        if start.first_step == 0:  # nothing before step 0 is kept: the events of an attempt without a checkpoint
            remove_event_files(self.log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step(start.first_step),
                                    flush_secs=FLUSH_SECONDS)
        if start.first_step == 0:  # a resumed run keeps the config text its first process wrote
            self.writer.add_text(CONFIG_TAG, config_markdown(start.config), global_step=0)

    def progress(self, progress: Progress) -> None:
        if self.writer is None or not progress.complete:  # a heartbeat is no history row: its step is logged later
            return
        for name, value in progress.stats.items():
            self.writer.add_scalar(f"train/{name}", value, progress.step)
        for name, tag in SPEED_TAGS.items():
            value = getattr(progress, name)
            if math.isfinite(value):  # NaN: no rate measured yet, not a point on the curve
                self.writer.add_scalar(tag, value, progress.step)

    def checkpoint(self, event: CheckpointEvent) -> None:
        if self.writer is None:
            return
        grid = event.grid
        if grid is not None:
            self.writer.add_image(GRID_TAG, grid, event.entry.step, dataformats="HWC")
        self.writer.flush()  # a checkpoint is a point a reader (and a crash) should see everything up to

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def config_markdown(config: dict) -> str:
    """The effective config as a JSON code block, which TensorBoard's text tab renders as is."""
    return "```json\n" + json.dumps(config, indent=2, sort_keys=True, default=str) + "\n```"


def log_checkpoint_scores(run_dir: Path, scores: pd.DataFrame, floor: dict | None = None) -> Path:
    """Each checkpoint's scores as `scores/<metric>` at its step, and the real floor (`floor`, else the frame's
    `real_floor` row) as a flat line `real_floor/<metric>` over the same steps, into `run_dir/tensorboard/scores/`.
    The folder's old event files are deleted first: a rescoring replaces the points rather than adding to them
    (the training curves, in the folder above, are untouched). Returns the folder."""
    folder = Path(run_dir) / TENSORBOARD_DIR / SCORES_DIR
    remove_event_files(folder)
    checkpoints = scores[scores["name"] != REAL_FLOOR]
    metrics = metric_columns(scores)
    floor = real_floor_values(scores, metrics) if floor is None else floor
    with SummaryWriter(log_dir=str(folder), purge_step=0) as writer:  # a running TensorBoard drops the old points
        for row in checkpoints.to_dict("records"):
            step = int(row["step"])
            for metric in metrics:
                write_finite(writer, f"scores/{metric}", row[metric], step)
            for metric, value in floor.items():
                write_finite(writer, f"{REAL_FLOOR}/{metric}", value, step)
    return folder


def metric_columns(scores: pd.DataFrame) -> list[str]:
    """The numeric columns of a scores frame other than its step."""
    return [c for c in scores.select_dtypes("number").columns if c != "step"]


def real_floor_values(scores: pd.DataFrame, metrics: list[str]) -> dict[str, float]:
    """The `real_floor` row's metrics (none when the frame has no such row)."""
    rows = scores[scores["name"] == REAL_FLOOR]
    return {} if rows.empty else {metric: rows.iloc[0][metric] for metric in metrics}


def write_finite(writer: SummaryWriter, tag: str, value, step: int) -> None:
    """A scalar, unless it is missing (a metric the row has none of, e.g. the real floor's bits_per_dim)."""
    if value is not None and not pd.isna(value) and math.isfinite(float(value)):
        writer.add_scalar(tag, float(value), step)


def remove_event_files(folder: Path) -> None:
    """Deletes the event files directly in `folder` (only those: nothing else a user may have put there)."""
    for path in folder.glob("events.out.tfevents.*"):
        path.unlink(missing_ok=True)
