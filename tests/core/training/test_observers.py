"""What a training tells its observers: every logged window with its rate and ETA, heartbeats that never enter the
history, each checkpoint with the gallery's own grid; an observer that fails is dropped with one warning and the
training goes on, identical."""

from pathlib import Path

import numpy as np
import pytest
import torch

from gan_assets.core.evaluation.loading import load_generator
from gan_assets.core.evaluation.sampling import class_labels, generate
from gan_assets.core.png import grid_array
from gan_assets.core.telemetry.grids import live_grid_drawer
from gan_assets.core.telemetry.live_file import LiveCheckpoint, LiveFileObserver, LiveFileReader
from gan_assets.core.training.loop import TrainingCallbacks, train
from gan_assets.core.training.observers import CheckpointEvent, Observers, Progress, ProgressClock, RunObserver
from gan_assets.core.training.run import RunInputs, train_run
from tests.core.training.test_training import fake_data, fake_digits, tiny_config, tiny_state


def tiny_inputs() -> RunInputs:
    data, labels = fake_digits(), np.arange(64) % 4
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(1)).numpy()
    return RunInputs(images=data, labels=labels, num_classes=4, reference_images=data[:16],
                     reference_labels=labels[:16], reference_z=z)


class Recorder(RunObserver):
    def __init__(self):
        self.events = []

    def started(self, start):
        self.events.append(("started", start.first_step, start.total_steps))

    def progress(self, progress):
        self.events.append(("progress", progress))

    def checkpoint(self, event):
        self.events.append(("checkpoint", event.entry.step, event.grid))

    def finished(self, manifest):
        self.events.append(("finished", manifest.latest.step))

    def close(self):
        self.events.append(("closed",))


class Broken(RunObserver):
    def progress(self, progress):
        raise ConnectionError("tracking server gone")


def test_observers_hear_every_window_and_checkpoint_with_the_gallery_grid(tmp_path: Path):
    inputs, recorder = tiny_inputs(), Recorder()
    watchers = Observers([recorder], draw_grid=live_grid_drawer(inputs))
    manifest = train_run(tiny_config(), inputs, tmp_path, device="cpu", log=lambda m: None, observer=watchers)
    kinds = [e[0] for e in recorder.events]
    assert kinds == ["started", "progress", "checkpoint", "progress", "progress", "checkpoint", "finished", "closed"]
    assert recorder.events[0] == ("started", 0, 6)
    progress = [e[1] for e in recorder.events if e[0] == "progress"]
    history = manifest.history_frame()
    assert [p.step for p in progress] == history["step"].tolist() == [2, 4, 6]
    for p, row in zip(progress, history.to_dict("records")):
        assert p.complete and p.stats == pytest.approx({k: v for k, v in row.items() if k != "step"})
        assert p.steps_per_second > 0 and p.eta_seconds == pytest.approx((6 - p.step) / p.steps_per_second)
    # the grid of step 3 is the gallery's: 2x2 (the reference has 16 z: side min(8, 4) = 4) of G_ema/G in eval mode
    step, grid = [e[1:] for e in recorder.events if e[0] == "checkpoint"][0]
    generator = load_generator(manifest, manifest.checkpoints[0], "eval", torch.from_numpy(inputs.reference_z),
                               torch.from_numpy(inputs.reference_labels))
    z = torch.from_numpy(inputs.reference_z[:16])
    expected = grid_array(generate(generator, z, class_labels(generator, 16, per_row=4)), nrow=4)
    assert step == 3 and np.array_equal(grid, expected)


def test_a_failing_observer_is_dropped_with_one_warning_and_training_is_unchanged(tmp_path: Path):
    inputs, warnings, recorder = tiny_inputs(), [], Recorder()
    plain = train_run(tiny_config(), inputs, tmp_path / "plain", device="cpu", log=lambda m: None)
    watched = train_run(tiny_config(), inputs, tmp_path / "watched", device="cpu", log=warnings.append,
                        observer=Observers([Broken(), recorder], log=warnings.append))
    assert watched.history_frame().equals(plain.history_frame())
    assert [c.generator_sha256 for c in watched.checkpoints] == [c.generator_sha256 for c in plain.checkpoints]
    failures = [w for w in warnings if w.startswith("warning: telemetry")]
    assert len(failures) == 1 and "Broken failed on progress (ConnectionError: tracking server gone)" in failures[0]
    assert sum(e[0] == "progress" for e in recorder.events) == 3  # the others still hear everything


def test_a_heartbeat_reports_the_window_so_far_and_leaves_the_history_alone():
    config = tiny_config(steps=6, log_every=3, checkpoint_every=6)
    beats = []
    plain = train(tiny_state(config), fake_data(), config.training, TrainingCallbacks())
    beating = train(tiny_state(config), fake_data(), config.training,
                    TrainingCallbacks(heartbeat=lambda step, stats: beats.append((step, stats)), heartbeat_seconds=0.0))
    assert beating.history == plain.history  # whole windows only, identical numbers
    assert [step for step, _ in beats] == [1, 2, 4, 5]  # every step that ends no window (interval 0)
    # step 2's beat is the mean of the window's two steps so far; the window of 3 completes it
    assert all(np.isfinite(list(stats.values())).all() for _, stats in beats)
    assert set(beats[1][1]) == {"step", "loss_d", "loss_g", "d_x", "d_g_z"}


def test_progress_clock_rate_and_eta():
    clock = ProgressClock(first_step=100, total_steps=1100)
    clock.started -= 10.0  # ten seconds ago
    progress = clock.progress(200, {"step": 200, "loss_d": 1.0})
    assert progress.steps_per_second == pytest.approx(10.0, rel=0.01)
    assert progress.eta_seconds == pytest.approx(90.0, rel=0.01)
    assert progress.stats == {"loss_d": 1.0} and progress.metrics["eta_seconds"] == progress.eta_seconds
    assert np.isnan(clock.progress(100, {}).steps_per_second)  # no step timed yet


def test_the_live_file_round_trips_and_waits_for_whole_lines(tmp_path: Path):
    writer, reader = LiveFileObserver(tmp_path), LiveFileReader(tmp_path)
    writer.progress(Progress(step=5, total_steps=20, stats={"loss_d": 1.25, "loss_g": float("nan")},
                             steps_per_second=float("nan"), eta_seconds=3.0, complete=False))
    manifest_entry = type("Entry", (), {"step": 10, "name": "step_000010"})()
    event = CheckpointEvent(manifest=None, entry=manifest_entry,
                            draw_grid=lambda m, e: np.full((4, 6, 3), 7, dtype=np.uint8))
    writer.checkpoint(event)
    with (tmp_path / "live.jsonl").open("a") as file:
        file.write('{"event": "progress", "step"')  # a line still being written
    first, second = reader.read_new()
    assert (first.step, first.stats["loss_d"], first.eta_seconds, first.complete) == (5, 1.25, 3.0, False)
    assert np.isnan(first.stats["loss_g"]) and np.isnan(first.steps_per_second)
    assert isinstance(second, LiveCheckpoint) and (second.step, second.name) == (10, "step_000010")
    assert second.grid_png.startswith(b"\x89PNG")
    assert reader.read_new() == []  # the half line waits
    writer.close()
