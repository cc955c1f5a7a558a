"""MLflow tracking against a real `mlflow server` (conftest.py), checked through MLflow's own client: one run per
training with its config, tags, curves and grids; a resume continues it without a repeated step; scores and the
registered generator; and a server that is down, refuses or stalls costs a training nothing but one warning."""

from __future__ import annotations

import copy
import http.server
import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from gan_assets.core.config import parse_experiment
from gan_assets.core.evaluation.scoring import REAL_FLOOR
from gan_assets.core.telemetry.grids import live_grid_drawer
from gan_assets.core.telemetry.tracking import (
    MlflowObserver,
    TrackingSettings,
    flat_params,
    log_checkpoint_scores,
    register_best_generator,
)
from gan_assets.core.training.manifest import RunManifest
from gan_assets.core.training.observers import Observers, RunObserver
from gan_assets.core.training.run import RunInputs, train_run
from tests.mlflow_server import free_port

TINY = {"dataset": {"image_size": 16}, "model": {"z_dim": 8, "g_width": 4, "d_width": 4},
        "training": {"steps": 6, "batch_size": 8, "checkpoint_every": 3, "log_every": 2},
        "reference_batch": {"size": 8}, "gallery": {"grid_size": 2}}
TAGS = {"dagster.run_id": "dagster-run-1", "gan.experiment": "tiny", "dagster.partition": "tiny",
        "gan.code_version": "code-1", "gan.data_version": "data-1"}
STATS = ["loss_d", "loss_g", "d_x", "d_g_z"]
PROGRESS_BOUND = 0.05  # seconds: a progress() call queues and returns; a network round trip would show


def tiny_config(steps: int = 6):
    raw = copy.deepcopy(TINY)
    raw["training"]["steps"] = steps
    return parse_experiment(raw)


def tiny_inputs() -> RunInputs:
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    labels = np.arange(64) % 4
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(1)).numpy()
    return RunInputs(images=images, labels=labels, num_classes=4, reference_images=images[:8],
                     reference_labels=labels[:8], reference_z=z)


class Timed(RunObserver):
    """Passes events on to `inner`, timing each progress() call on the training thread."""

    def __init__(self, inner: RunObserver) -> None:
        self.inner, self.progress_seconds = inner, []

    def started(self, start):
        self.inner.started(start)

    def progress(self, progress):
        begun = time.perf_counter()
        self.inner.progress(progress)
        self.progress_seconds.append(time.perf_counter() - begun)

    def checkpoint(self, event):
        self.inner.checkpoint(event)

    def finished(self, manifest):
        self.inner.finished(manifest)

    def close(self):
        self.inner.close()


def train(run_dir: Path, steps: int, observer: RunObserver | None = None, warnings: list | None = None) -> RunManifest:
    inputs = tiny_inputs()
    observers = Observers([observer] if observer else [], draw_grid=live_grid_drawer(inputs),
                          log=(warnings if warnings is not None else []).append)
    return train_run(tiny_config(steps), inputs, run_dir, device="cpu", log=lambda line: None, observer=observers)


def tracked_train(settings: TrackingSettings, run_dir: Path, steps: int, tags: dict, **options):
    """A training watched by an MlflowObserver (timed); its warnings and progress() timings."""
    warnings: list[str] = []
    timed = Timed(MlflowObserver(settings, tags, log=warnings.append, **options))
    manifest = train(run_dir, steps, timed, warnings)
    return manifest, warnings, timed.progress_seconds


def only_run(client: MlflowClient, settings: TrackingSettings):
    experiment = client.get_experiment_by_name(settings.experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


@pytest.fixture(scope="module")
def tracked(mlflow_server, tmp_path_factory):
    """A training of 3 steps, then resumed to 6 in the same run directory by a retry (another Dagster run id)."""
    settings = TrackingSettings(mlflow_server, experiment_name="tracked-training")
    run_dir = tmp_path_factory.mktemp("runs") / "runkey0123456789"
    first, warnings_first, seconds_first = tracked_train(settings, run_dir, 3, TAGS)
    client = MlflowClient(mlflow_server)
    after_first = only_run(client, settings)
    final, warnings_resumed, seconds_resumed = tracked_train(settings, run_dir, 6, {**TAGS,
                                                                                 "dagster.run_id": "dagster-run-2"})
    return {"settings": settings, "client": client, "run_dir": run_dir, "first": first, "final": final,
            "after_first": after_first, "warnings": warnings_first + warnings_resumed,
            "progress_seconds": seconds_first + seconds_resumed}


def test_a_training_is_one_run_with_its_config_and_tags(tracked):
    client, run = tracked["client"], only_run(tracked["client"], tracked["settings"])
    assert tracked["warnings"] == []
    assert run.info.run_id == tracked["after_first"].info.run_id  # the resume continued the first attempt's run
    assert run.info.status == "FINISHED" and tracked["after_first"].info.status == "FINISHED"
    tags = run.data.tags
    assert tags["gan.run_key"] == "runkey0123456789" and tags["gan.family"] == "gan"
    assert {k: tags[k] for k in TAGS} == {**TAGS, "dagster.run_id": "dagster-run-2"}  # the latest attempt's run id
    # the params of the first attempt; a resume logs only what is missing (training.steps keeps its first value)
    expected = flat_params(json.loads(tiny_config(3).model_dump_json()))
    assert run.data.params == expected
    assert run.data.params["training.lr_g"] == str(tiny_config().training.lr_g)
    assert client.get_run(run.info.run_id).info.run_name == "tiny-runkey0123456789"


def test_curves_match_the_history_without_a_repeated_step(tracked):
    client, run = tracked["client"], only_run(tracked["client"], tracked["settings"])
    history = pd.read_parquet(tracked["run_dir"] / "history.parquet")
    assert history["step"].tolist() == [2, 3, 4, 6]  # the first attempt's last step (3), then the resume's
    for stat in STATS:
        points = sorted(client.get_metric_history(run.info.run_id, f"train/{stat}"), key=lambda m: m.step)
        assert [m.step for m in points] == history["step"].tolist()
        assert [m.value for m in points] == pytest.approx(history[stat].tolist(), rel=1e-6)
    speed = client.get_metric_history(run.info.run_id, "speed/steps_per_second")
    assert sorted(m.step for m in speed) == [2, 3, 4, 6] and all(m.value > 0 for m in speed)


def test_each_checkpoint_has_its_grid(tracked):
    client, run = tracked["client"], only_run(tracked["client"], tracked["settings"])
    names = sorted(a.path for a in client.list_artifacts(run.info.run_id, "samples"))
    assert names == [f"samples/{c.name}.png" for c in tracked["final"].checkpoints] == [
        "samples/step_000003.png", "samples/step_000006.png"]
    local = client.download_artifacts(run.info.run_id, "samples/step_000006.png", str(tracked["run_dir"] / "dl"))
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_never_waits_for_the_server(tracked):
    assert len(tracked["progress_seconds"]) == 4
    assert max(tracked["progress_seconds"]) < PROGRESS_BOUND


def test_a_training_that_raises_leaves_its_run_failed(mlflow_server, tmp_path):
    from gan_assets.core.training.loop import NonFiniteTraining

    settings = TrackingSettings(mlflow_server, experiment_name="failing-training")
    warnings: list[str] = []
    raw = copy.deepcopy(TINY)
    raw["training"].update(checkpoint_every=1, log_every=1, lr_g=1e30)  # overflows within a few steps
    inputs = tiny_inputs()
    observers = Observers([MlflowObserver(settings, TAGS, log=warnings.append)], log=warnings.append)
    with pytest.raises(NonFiniteTraining):
        train_run(parse_experiment(raw), inputs, tmp_path / "run", device="cpu", log=lambda line: None,
                  observer=observers)
    run = only_run(MlflowClient(mlflow_server), settings)
    assert warnings == [] and run.info.status == "FAILED" and run.data.metrics


def scores_frame(manifest: RunManifest, shift: float = 0.0) -> pd.DataFrame:
    rows = [{"name": c.name, "step": c.step, "fd": 10.0 / (i + 1) + shift, "class_coverage": 0.5 + 0.1 * i}
            for i, c in enumerate(manifest.checkpoints)]
    rows.append({"name": REAL_FLOOR, "step": None, "fd": 0.5, "class_coverage": 1.0})
    frame = pd.DataFrame(rows)
    frame["step"] = frame["step"].astype("Int64")
    return frame


def test_scores_go_to_the_training_run_once(tracked):
    settings, client, manifest = tracked["settings"], tracked["client"], tracked["final"]
    warnings: list[str] = []
    first = log_checkpoint_scores(settings, "runkey0123456789", scores_frame(manifest), "step_000006", warnings.append)
    again = log_checkpoint_scores(settings, "runkey0123456789", scores_frame(manifest, shift=1.0), "step_000006",
                                  warnings.append)  # a rescoring: its points are not added a second time
    run = only_run(client, settings)
    assert warnings == [] and first == again and first.run_id == run.info.run_id
    assert first.url == f"{settings.tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    fd = sorted(client.get_metric_history(run.info.run_id, "score/fd"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in fd] == [(3, 10.0), (6, 5.0)]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "real_floor/fd")] == [(0, 0.5)]
    assert run.data.tags["gan.best_checkpoint"] == "step_000006"
    table = client.download_artifacts(run.info.run_id, "scores/checkpoint_scores.csv", str(tracked["run_dir"] / "s"))
    assert pd.read_csv(table)["fd"].tolist()[:2] == [11.0, 6.0]  # the table is the latest scoring's


def test_the_best_generator_is_registered_once_with_its_scores(tracked):
    settings, client, manifest = tracked["settings"], tracked["client"], tracked["final"]
    warnings: list[str] = []
    best, other = manifest.checkpoints[-1], manifest.checkpoints[0]

    def register(entry):
        files = {"generator": manifest.verified_path(entry, "generator")}
        return register_best_generator(settings, "runkey0123456789", "tiny-model", files, {"fd": 5.0, "recall": 0.25},
                                       "the best of tiny", warnings.append, checkpoint=entry.name)

    assert register(best) == "1"
    assert register(best) == "1"  # the same weights: no second version
    assert register(other) == "2"
    assert warnings == []
    versions = {v.version: v for v in client.search_model_versions("name = 'tiny-model'")}
    assert sorted(versions) == ["1", "2"]
    first = client.get_model_version("tiny-model", "1")
    assert first.tags["fd"] == "5.0" and first.tags["recall"] == "0.25"
    assert first.tags["gan.generator_sha256"] == best.generator_sha256 and first.description == "the best of tiny"
    run = only_run(client, settings)
    assert first.run_id == run.info.run_id and first.source == f"{run.info.artifact_uri}/generator/{best.name}"
    files = [a.path for a in client.list_artifacts(run.info.run_id, f"generator/{best.name}")]
    assert files == [f"generator/{best.name}/{Path(best.generator).name}"]


class Refusing(http.server.BaseHTTPRequestHandler):
    """A server that answers every request with 500 (or first stalls, when `delay`), in a thread of the test."""

    delay = 0.0

    def _answer(self):
        time.sleep(self.delay)
        self.send_response(500)
        self.end_headers()
        self.wfile.write(b"refused")

    do_GET = do_POST = do_PUT = do_PATCH = _answer

    def log_message(self, *args):
        pass


def stub_server(delay: float = 0.0) -> http.server.ThreadingHTTPServer:
    handler = type("Handler", (Refusing,), {"delay": delay})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def untracked_history(tmp_path_factory) -> pd.DataFrame:
    run_dir = tmp_path_factory.mktemp("untracked") / "run"
    train(run_dir, 6)
    return pd.read_parquet(run_dir / "history.parquet")


@pytest.mark.parametrize("server", ["down", "deleted experiment", "HTTP 500", "stalling"])
def test_a_failing_server_costs_the_training_one_warning(server, mlflow_server, untracked_history, tmp_path):
    stub = stub_server(delay=3.0) if server == "stalling" else stub_server() if server == "HTTP 500" else None
    uri = {"down": f"http://127.0.0.1:{free_port()}", "deleted experiment": mlflow_server}.get(server)
    uri = uri or f"http://127.0.0.1:{stub.server_address[1]}"
    settings = TrackingSettings(uri, experiment_name="deleted" if server == "deleted experiment" else "gan-assets")
    if server == "deleted experiment":  # the real server refuses a run in it
        client = MlflowClient(uri)
        client.delete_experiment(client.create_experiment("deleted"))
    try:
        begun = time.monotonic()
        manifest, warnings, progress_seconds = tracked_train(settings, tmp_path / "run", 6, TAGS, drain_seconds=2.0)
        seconds = time.monotonic() - begun
    finally:
        if stub is not None:
            stub.shutdown()
            stub.server_close()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "run/history.parquet"), untracked_history)
    assert [c.step for c in manifest.checkpoints] == [3, 6]
    assert len(warnings) == 1 and uri in warnings[0] and warnings[0].startswith("warning: MLflow tracking at ")
    assert max(progress_seconds) < PROGRESS_BOUND
    if server == "stalling":  # close() waited its drain time, no more, for a server that never answers in time
        assert "still unsent after 2 s" in warnings[0] and seconds < 15
        return
    # the stages after training say the same once each, and never raise
    said: list[str] = []
    assert log_checkpoint_scores(settings, "run", scores_frame(manifest), "step_000006", said.append) is None
    files = {"generator": manifest.verified_path(manifest.latest, "generator")}
    assert register_best_generator(settings, "run", "m", files, {"fd": 1.0}, "", said.append) is None
    assert len(said) == 2 and all(uri in line for line in said)
