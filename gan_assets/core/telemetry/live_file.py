"""A training's live events as a file: how a trainer in another process (torchrun ranks, a pod) tells the Dagster
step that launched it how it is going, while it goes.

Rank 0 appends one JSON line per event to `live.jsonl` in the launch folder of the run directory (the folder the
launching step already shares with the trainer), and each checkpoint's grid as a PNG beside it; the step reads new
complete lines as they appear (`LiveFileReader`) and reports them on the asset's page
(gan_assets/resources/live_events.py). A file, not the Pipes message channel: Dagster's Pipes handler hands custom
messages over only when the process ends, and every launch (subprocess, pod) already shares the run directory.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from gan_assets.core.png import png_bytes
from gan_assets.core.storage import write_bytes_atomic
from gan_assets.core.training.observers import CheckpointEvent, Progress, RunObserver

LIVE_FILE = "live.jsonl"
GRIDS_DIR = "live_grids"


class LiveFileObserver(RunObserver):
    """Appends progress and checkpoint events to `folder/live.jsonl` (a grid PNG per checkpoint in `folder/live_grids`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.file = (folder / LIVE_FILE).open("a", encoding="utf-8")

    def _write(self, record: dict) -> None:
        # one write of a whole line, flushed: a reader never sees half an event as a complete line
        self.file.write(json.dumps(record, allow_nan=False) + "\n")
        self.file.flush()

    def progress(self, progress: Progress) -> None:
        self._write({"event": "progress", "step": progress.step, "total_steps": progress.total_steps,
                     "stats": _finite(progress.stats), "steps_per_second": _number(progress.steps_per_second),
                     "eta_seconds": _number(progress.eta_seconds), "complete": progress.complete})

    def checkpoint(self, event: CheckpointEvent) -> None:
        grid = None
        if event.grid is not None:
            path = self.folder / GRIDS_DIR / f"{event.entry.name}.png"
            write_bytes_atomic(png_bytes(event.grid), path)
            grid = str(path.relative_to(self.folder))
        self._write({"event": "checkpoint", "step": event.entry.step, "name": event.entry.name, "grid": grid})

    def close(self) -> None:
        self.file.close()


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None  # JSON has no NaN: an unknown rate or ETA is null


def _finite(stats: dict[str, float]) -> dict[str, float | None]:
    return {name: _number(value) for name, value in stats.items()}


@dataclass(frozen=True)
class LiveCheckpoint:
    step: int
    name: str
    grid_png: bytes | None


class LiveFileReader:
    """New events of a live file since the last read: `Progress` and `LiveCheckpoint` records, in order. A line
    still being written (no newline yet) waits for the next read."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.offset = folder, 0

    def read_new(self) -> list[Progress | LiveCheckpoint]:
        path = self.folder / LIVE_FILE
        if not path.exists():
            return []
        with path.open("rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [self._event(json.loads(line)) for line in complete.decode("utf-8").splitlines() if line.strip()]

    def _event(self, record: dict) -> Progress | LiveCheckpoint:
        if record["event"] == "checkpoint":
            grid = (self.folder / record["grid"]).read_bytes() if record["grid"] else None
            return LiveCheckpoint(step=record["step"], name=record["name"], grid_png=grid)
        nan = float("nan")
        return Progress(step=record["step"], total_steps=record["total_steps"],
                        stats={k: nan if v is None else v for k, v in record["stats"].items()},
                        steps_per_second=nan if record["steps_per_second"] is None else record["steps_per_second"],
                        eta_seconds=nan if record["eta_seconds"] is None else record["eta_seconds"],
                        complete=record["complete"])
