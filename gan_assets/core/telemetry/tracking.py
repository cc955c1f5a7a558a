"""MLflow tracking of a training: one MLflow run per run directory, its curves, grids, scores and best generator.

Off unless a tracking URI is given (`TrackingSettings`; the Dagster side reads it from the `mlflow_tracking` resource
or `MLFLOW_TRACKING_URI`). Everything goes through an `mlflow.MlflowClient` bound to that URI: no global
`mlflow.start_run` state, so trainings running side by side in one process never write into each other's runs.

One training is one MLflow run, found by its tag `gan.run_key` (the run directory's name) in the MLflow experiment:
a resumed or retried training, and the scoring stage in a process of its own, continue the run the first attempt
opened. MLflow refuses to change a param and cannot delete a metric point, so a continuation logs only the params not
yet there and only the steps past those already logged (a resumed run re-trains the steps after its checkpoint with
the same RNG: the same numbers).

Tracking never fails nor slows a training. `MlflowObserver` hands its events to one daemon thread through a bounded
queue (a full queue drops and counts); the first failure (server down, a refused write) becomes one warning naming
the server, and nothing more is sent. `log_checkpoint_scores` and `register_best_generator` catch every error alike.
MLflow retries a failing request for minutes by default; `tracking_client` shortens that (see `SHORT_HTTP_RETRIES`).

`mlflow` is imported only when tracking is on: it takes seconds to import, and the code location loads this module.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from gan_assets.core.evaluation.scoring import REAL_FLOOR
from gan_assets.core.png import save_png
from gan_assets.core.storage import file_sha256
from gan_assets.core.training.manifest import RunManifest
from gan_assets.core.training.observers import CheckpointEvent, Progress, RunObserver, RunStart

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

DEFAULT_EXPERIMENT = "gan-assets"
RUN_KEY_TAG = "gan.run_key"  # what finds a training's MLflow run again
BEST_CHECKPOINT_TAG = "gan.best_checkpoint"
GENERATOR_SHA_TAG = "gan.generator_sha256"  # on a model version: which weights it holds (registering is idempotent)
TRAIN_PREFIX, SPEED_PREFIX = "train/", "speed/"  # the curves, as TensorBoard names them
SPEED_METRICS = ("steps_per_second", "eta_seconds")
SCORE_PREFIX = "score/"
SAMPLES_DIR, GENERATOR_DIR, SCORES_FILE = "samples", "generator", "scores/checkpoint_scores.csv"

QUEUE_SIZE = 1000  # events waiting for the thread; a window every log_every steps, so this is hours of a dead link
DRAIN_SECONDS = 10.0  # what close() waits for queued events before leaving them (the thread is a daemon)
# MLflow reads these from the environment at each request (mlflow/environment_variables.py, utils/rest_utils.py) and
# has no per-client setting: its defaults (7 retries, backoff 2, 120 s timeout) retry a dead server for ~4 minutes.
# `tracking_client` sets them only where the environment has none, so a user's own values win.
SHORT_HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                      "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# MLflow's limits (mlflow/utils/validation.py), repeated here so that importing this module does not import mlflow
MAX_PARAMS_PER_BATCH, MAX_METRICS_PER_BATCH, MAX_PARAM_LENGTH, MAX_TAG_LENGTH = 100, 1000, 6000, 8000


@dataclass(frozen=True)
class TrackingSettings:
    """Where trainings are tracked: an MLflow tracking URI (http://host:port, or a database URI) and experiment."""

    tracking_uri: str
    experiment_name: str = DEFAULT_EXPERIMENT


@dataclass(frozen=True)
class TrackedRun:
    """A training's MLflow run: enough to link to it."""

    tracking_uri: str
    experiment_id: str
    run_id: str

    @property
    def url(self) -> str | None:
        """The run's page in the MLflow UI, when the tracking URI is a server's."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return None
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"


# -- the client and the run ------------------------------------------------------------------------------------
def tracking_client(settings: TrackingSettings) -> MlflowClient:
    """A client bound to `settings.tracking_uri` for tracking and registry alike, its HTTP retries kept short."""
    for name, value in SHORT_HTTP_RETRIES.items():
        os.environ.setdefault(name, value)  # process-wide: MLflow offers no other way (see SHORT_HTTP_RETRIES)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of the MLflow experiment `name`, created when missing (another process may create it at once)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def open_run(client: MlflowClient, settings: TrackingSettings, run_key: str, tags: dict[str, str]) -> tuple[Run, bool]:
    """The MLflow run of the training `run_key` (created when there is none: True), with `tags` set on it."""
    from mlflow.entities import RunTag

    experiment = experiment_id(client, settings.experiment_name)
    found = client.search_runs([experiment], f"tags.`{RUN_KEY_TAG}` = '{quoted(run_key)}'", max_results=1,
                               order_by=["attributes.start_time ASC"])
    tags = {k: str(v)[:MAX_TAG_LENGTH] for k, v in tags.items()}
    if found:
        run = found[0]
        changed = [RunTag(k, v) for k, v in tags.items() if run.data.tags.get(k) != v]
        if changed:  # a retry's own Dagster run id, say
            client.log_batch(run.info.run_id, tags=changed, synchronous=True)
        return run, False
    name = f"{tags['gan.experiment']}-{run_key}" if tags.get("gan.experiment") else run_key
    return client.create_run(experiment, tags={**tags, RUN_KEY_TAG: run_key}, run_name=name), True


def tracked(settings: TrackingSettings, run: Run) -> TrackedRun:
    return TrackedRun(settings.tracking_uri, run.info.experiment_id, run.info.run_id)


def quoted(value: str) -> str:
    """`value` inside a single-quoted MLflow filter string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def failure_warning(settings: TrackingSettings, doing: str, error: BaseException | str) -> str:
    """The one line a failure becomes: which server, what was being done, MLflow's own words (shortened)."""
    said = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    said = " ".join(said.split())
    said = said if len(said) <= 400 else f"{said[:220]} ... {said[-160:]}"  # the cause is often said last
    return (f"warning: MLflow tracking at {settings.tracking_uri} failed {doing} ({said}); nothing more is sent "
            f"there, the pipeline goes on")


# -- params and metrics -------------------------------------------------------------------------------------------
def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    """The config as MLflow params: `training.lr_g` style keys, values as text (JSON for non-strings), cut to MLflow's
    6,000 characters."""
    params: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            params.update(flat_params(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            params[name] = text[:MAX_PARAM_LENGTH]
    return params


def log_new_params(client: MlflowClient, run: Run, params: dict[str, str]) -> None:
    """Logs the params `run` lacks. One it has keeps its first value: MLflow refuses to change a param, and a key
    logged by an earlier attempt holds what that attempt trained with (the run key covers what training reads)."""
    from mlflow.entities import Param

    new = [Param(k, v) for k, v in params.items() if k not in run.data.params]
    for start in range(0, len(new), MAX_PARAMS_PER_BATCH):
        client.log_batch(run.info.run_id, params=new[start:start + MAX_PARAMS_PER_BATCH], synchronous=True)


def curve_metrics(progress: Progress) -> dict[str, float]:
    """A window's curves under MLflow keys (`train/loss_d`, `speed/steps_per_second`); NaN (no rate yet) left out."""
    named = {f"{TRAIN_PREFIX}{k}": v for k, v in progress.stats.items()}
    named.update({f"{SPEED_PREFIX}{k}": getattr(progress, k) for k in SPEED_METRICS})
    return {k: float(v) for k, v in named.items() if v is not None and math.isfinite(float(v))}


def last_logged_step(client: MlflowClient, run: Run) -> int:
    """The last training step whose curves `run` holds (-1: none): a resumed training re-runs steps up to it."""
    curves = sorted(k for k in run.data.metrics if k.startswith(TRAIN_PREFIX))
    if not curves:
        return -1
    key = f"{TRAIN_PREFIX}loss_d" if f"{TRAIN_PREFIX}loss_d" in curves else curves[0]
    return max((m.step for m in client.get_metric_history(run.info.run_id, key)), default=-1)


def log_metrics(client: MlflowClient, run_id: str, points: list[tuple[str, float, int]], timestamp_ms: int) -> None:
    """`(key, value, step)` points through `log_batch`, in batches MLflow accepts."""
    from mlflow.entities import Metric

    metrics = [Metric(key, value, timestamp_ms, step) for key, value, step in points]
    for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start:start + MAX_METRICS_PER_BATCH], synchronous=True)


def log_grid(client: MlflowClient, run_id: str, name: str, grid: np.ndarray) -> None:
    """A checkpoint's grid as `samples/<checkpoint>.png` (a resumed run rewrites the same file, never a second)."""
    if grid.ndim == 3 and grid.shape[-1] == 1:
        grid = grid[..., 0]  # PIL has no one-channel HWC
    with tempfile.TemporaryDirectory(prefix="gan-mlflow-") as folder:
        client.log_artifact(run_id, str(save_png(np.ascontiguousarray(grid), Path(folder) / f"{name}.png")), SAMPLES_DIR)


# -- the observer --------------------------------------------------------------------------------------------------
class MlflowObserver(RunObserver):
    """Tracks a training in MLflow from a thread of its own: the training thread only queues events.

    `tags` lead back to the pipeline (`dagster.run_id`, `gan.experiment`, `dagster.partition`, `gan.code_version`,
    `gan.data_version`, ...); the run key (the run directory's name) and the model family are added. The MLflow run
    goes RUNNING when a training starts, FINISHED when it ends, FAILED when it ends without `finished` (it raised);
    a resumed training sets it RUNNING again. `log` receives the one warning, always on the training thread."""

    def __init__(self, settings: TrackingSettings, tags: dict[str, str] | None = None, *,
                 log: Callable[[str], None] = print, queue_size: int = QUEUE_SIZE,
                 drain_seconds: float = DRAIN_SECONDS) -> None:
        self.settings, self.tags, self.log, self.drain_seconds = settings, dict(tags or {}), log, drain_seconds
        self.dropped = 0  # events a full queue refused
        self.run: TrackedRun | None = None  # set by the thread once the MLflow run is open
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None  # the warning for the thread's first error, said on the training thread
        self._warned = False
        self._end_status = "FAILED"  # until `finished`
        self._client: MlflowClient | None = None
        self._run_id: str | None = None
        self._logged_up_to = -1

    # -- the training thread: queue and return ------------------------------------------------------------------
    def started(self, start: RunStart) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="mlflow-tracking", daemon=True)
            self._thread.start()
        self._put(("start", start))

    def progress(self, progress: Progress) -> None:
        self._say_failure()
        if progress.complete:  # a heartbeat is no history row: its step is logged when its window completes
            self._put(("metrics", progress.step, curve_metrics(progress), now_ms()))

    def checkpoint(self, event: CheckpointEvent) -> None:
        self._say_failure()
        if self._failure is None:  # the grid is drawn once for every observer; not at all once this one is off
            grid = event.grid
            if grid is not None:
                self._put(("grid", event.entry.name, grid))

    def finished(self, manifest: RunManifest) -> None:
        self._end_status = "FINISHED"
        self._say_failure()

    def close(self) -> None:
        """Waits up to `drain_seconds` for the queued events, marks the run's end, then says what went wrong."""
        if self._thread is None:
            return
        self._closing.set()
        self._thread.join(self.drain_seconds)
        if self._thread.is_alive() and self._failure is None:
            self._failure = failure_warning(self.settings, "to take the queued events",
                                            f"{self._queue.qsize()} still unsent after {self.drain_seconds:g} s")
        self._say_failure()
        if self.dropped and not self._warned:
            self._warned = True
            self.log(f"warning: MLflow tracking at {self.settings.tracking_uri} dropped {self.dropped} events: "
                     f"the server took them slower than training made them")

    def _put(self, item: tuple) -> None:
        if self._failure is not None:
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _say_failure(self) -> None:
        if self._failure is not None and not self._warned:
            self._warned = True
            self.log(self._failure)

    # -- the tracking thread -----------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._closing.is_set():
                    break
                continue
            self._attempt(item)
        if self._run_id is not None:
            self._attempt(("end", self._end_status))

    def _attempt(self, item: tuple) -> None:
        """Sends one event; the first error switches sending off (no retry storm against a server that is down)."""
        if self._failure is not None:
            return
        try:
            getattr(self, f"_send_{item[0]}")(*item[1:])
        except Exception as err:  # noqa: BLE001 - tracking must never stop training
            self._failure = failure_warning(self.settings, DOING[item[0]], err)

    def _send_start(self, start: RunStart) -> None:
        self._client = tracking_client(self.settings)
        tags = {**self.tags, "gan.family": start.family}
        run, _ = open_run(self._client, self.settings, start.run_dir.name, tags)
        self._run_id = run.info.run_id
        if run.info.status != "RUNNING":  # a resumed or retried training
            self._client.update_run(self._run_id, status="RUNNING")
        log_new_params(self._client, run, flat_params(start.config))
        self._logged_up_to = last_logged_step(self._client, run)
        self.run = tracked(self.settings, run)

    def _send_metrics(self, step: int, metrics: dict[str, float], timestamp_ms: int) -> None:
        if step <= self._logged_up_to or not metrics:  # logged by an earlier attempt (the same numbers)
            return
        log_metrics(self._client, self._run_id, [(k, v, step) for k, v in metrics.items()], timestamp_ms)

    def _send_grid(self, name: str, grid: np.ndarray) -> None:
        log_grid(self._client, self._run_id, name, grid)

    def _send_end(self, status: str) -> None:
        self._client.set_terminated(self._run_id, status=status)


DOING = {"start": "opening the training's run", "metrics": "logging curves", "grid": "logging a checkpoint grid",
         "end": "ending the training's run"}


def now_ms() -> int:
    return int(time.time() * 1000)


# -- after training: scores and the registry ------------------------------------------------------------------------
def score_points(scores: pd.DataFrame) -> list[tuple[str, float, int]]:
    """Each checkpoint's metrics as `score/<metric>` at its step, the real floor's as `real_floor/<metric>` at step 0
    (a reference line, not a point of training); missing values (a metric a row has none of) left out."""
    metrics = [c for c in scores.select_dtypes("number").columns if c != "step"]
    points = []
    for row in scores.to_dict("records"):
        floor = row["name"] == REAL_FLOOR
        for metric in metrics:
            value = row[metric]
            if value is not None and not pd.isna(value) and math.isfinite(float(value)):
                key = f"{REAL_FLOOR}/{metric}" if floor else f"{SCORE_PREFIX}{metric}"
                points.append((key, float(value), 0 if floor else int(row["step"])))
    return points


def new_points(client: MlflowClient, run: Run, points: list[tuple[str, float, int]]) -> list[tuple[str, float, int]]:
    """The points whose (key, step) `run` does not hold yet: MLflow cannot delete a point, so a rescoring adds only
    the checkpoints it had not scored (the current table is the `scores/checkpoint_scores.csv` artifact)."""
    held = {key: {m.step for m in client.get_metric_history(run.info.run_id, key)}
            for key in {k for k, _, _ in points} if key in run.data.metrics}
    return [(k, v, s) for k, v, s in points if s not in held.get(k, ())]


def log_checkpoint_scores(settings: TrackingSettings, run_key: str, scores: pd.DataFrame, best: str,
                          log: Callable[[str], None] = print, tags: dict[str, str] | None = None) -> TrackedRun | None:
    """Logs a scoring into the MLflow run of training `run_key` (opened here if training was not tracked): the
    checkpoints' metrics and the real floor (`score_points`), the best checkpoint's name as tag `gan.best_checkpoint`
    and the whole table as `scores/checkpoint_scores.csv`. Never raises: a failure is one warning through `log`."""
    try:
        client = tracking_client(settings)
        run, created = open_run(client, settings, run_key, tags or {})
        log_metrics(client, run.info.run_id, new_points(client, run, score_points(scores)), now_ms())
        client.set_tag(run.info.run_id, BEST_CHECKPOINT_TAG, best)
        client.log_text(run.info.run_id, scores.to_csv(index=False), SCORES_FILE)
        if created:  # no training will end it
            client.set_terminated(run.info.run_id, status="FINISHED")
        return tracked(settings, run)
    except Exception as err:  # noqa: BLE001 - tracking must never fail the pipeline
        log(failure_warning(settings, "logging checkpoint scores", err))
        return None


def files_sha256(files: dict[str, Path]) -> str:
    """The generator's identity: its file's sha256 (the manifest's), or one hash over several files' hashes."""
    hashes = {name: file_sha256(Path(path)) for name, path in files.items()}
    if len(hashes) == 1:
        return next(iter(hashes.values()))
    return hashlib.sha256("".join(f"{n}:{h}\n" for n, h in sorted(hashes.items())).encode()).hexdigest()


def latest_version(client: MlflowClient, model_name: str) -> Any | None:
    """The registered model's newest version (None: no such model or no version yet)."""
    versions = client.search_model_versions(f"name = '{quoted(model_name)}'")
    return max(versions, key=lambda v: int(v.version), default=None)


def ensure_registered_model(client: MlflowClient, model_name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model_name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def register_best_generator(settings: TrackingSettings, run_key: str, model_name: str, files: dict[str, Path],
                            scores: dict[str, float], description: str = "", log: Callable[[str], None] = print, *,
                            checkpoint: str | None = None, tags: dict[str, str] | None = None) -> str | None:
    """Registers the generator `files` (name -> path) as a new version of the MLflow model `model_name`, with
    `scores` as the version's tags; returns the version (None: tracking failed, said through `log`).

    The files go to the training's MLflow run under `generator/<checkpoint>/` (the sha256 when no checkpoint is
    named): each version's source folder holds its own weights only. The source is that folder's artifact URI, with
    the run id, which MLflow's server accepts for weights that are no MLflow model flavour. Idempotent: when the
    model's newest version holds the same weights (tag `gan.generator_sha256`), that version is returned."""
    try:
        client = tracking_client(settings)
        digest = files_sha256(files)
        latest = latest_version(client, model_name)
        if latest is not None and latest.tags.get(GENERATOR_SHA_TAG) == digest:
            return str(latest.version)
        run, created = open_run(client, settings, run_key, tags or {})
        folder = f"{GENERATOR_DIR}/{checkpoint or digest[:16]}"
        for path in files.values():
            client.log_artifact(run.info.run_id, str(path), folder)
        if created:
            client.set_terminated(run.info.run_id, status="FINISHED")
        ensure_registered_model(client, model_name)
        version_tags = {name: repr(float(value)) for name, value in scores.items()}
        version_tags.update({GENERATOR_SHA_TAG: digest, RUN_KEY_TAG: run_key,
                             **({"gan.checkpoint": checkpoint} if checkpoint else {})})
        version = client.create_model_version(model_name, f"{run.info.artifact_uri}/{folder}", run_id=run.info.run_id,
                                              tags=version_tags, description=description or None, await_creation_for=0)
        return str(version.version)
    except Exception as err:  # noqa: BLE001 - tracking must never fail the pipeline
        log(failure_warning(settings, f"registering model {model_name!r}", err))
        return None
