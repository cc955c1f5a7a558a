"""TensorBoard event files, read back with TensorBoard's own reader: the curves equal the run's history, one grid per
checkpoint, a resumed run continues its curves without a duplicated step, a rescoring replaces the score points."""

import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from gan_assets.core.config import parse_experiment
from gan_assets.core.evaluation.scoring import REAL_FLOOR
from gan_assets.core.telemetry.grids import live_grid_drawer
from gan_assets.core.telemetry.tensorboard import TENSORBOARD_DIR, TensorBoardObserver, log_checkpoint_scores
from gan_assets.core.training.likelihood import train_likelihood_run
from gan_assets.core.training.manifest import RunManifest
from gan_assets.core.training.observers import Observers
from gan_assets.core.training.run import RunInputs, train_run

GAN = {"dataset": {"image_size": 16}, "model": {"z_dim": 8, "g_width": 4, "d_width": 4},
       "training": {"steps": 6, "batch_size": 8, "checkpoint_every": 3, "log_every": 2},
       "reference_batch": {"size": 8}, "gallery": {"grid_size": 2}}
VAE = {"dataset": {"image_size": 8}, "model": {"family": "vae", "vae": {"latent_dim": 2, "width": 4}},
       "training": {"steps": 4, "batch_size": 8, "checkpoint_every": 2, "log_every": 2},
       "reference_batch": {"size": 8}, "gallery": {"grid_size": 2}}
GAN_STATS = ("loss_d", "loss_g", "d_x", "d_g_z")
CRASHED = 999.0  # what the crashed process logged past its checkpoint: must never be read back


def config(raw: dict, **training):
    return parse_experiment({**raw, "training": {**raw["training"], **training}})


def tiny_inputs(side: int) -> RunInputs:
    images = np.random.default_rng(0).integers(0, 256, (64, 1, side, side), dtype=np.uint8)
    labels = np.arange(64) % 4
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(1)).numpy()
    return RunInputs(images=images, labels=labels, num_classes=4, reference_images=images[:8],
                     reference_labels=labels[:8], reference_z=z)


def train_gan(run_dir: Path, **training) -> RunManifest:
    inputs = tiny_inputs(16)
    observer = Observers([TensorBoardObserver(run_dir)], draw_grid=live_grid_drawer(inputs))
    return train_run(config(GAN, **training), inputs, run_dir, device="cpu", log=lambda m: None, observer=observer)


def events(folder: Path) -> EventAccumulator:
    return EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0}).Reload()


def series(reader: EventAccumulator, tag: str) -> tuple[list[int], list[float]]:
    points = reader.Scalars(tag)
    return [p.step for p in points], [p.value for p in points]


def next_second() -> None:
    """Event files sort by their creation second first: a restarted process is a later file, as on a real machine."""
    now = int(time.time())
    while int(time.time()) == now:
        time.sleep(0.02)


def assert_curves_equal_history(reader: EventAccumulator, history: pd.DataFrame, stats) -> None:
    for stat in stats:
        steps, values = series(reader, f"train/{stat}")
        assert steps == history["step"].tolist(), stat
        assert values == pytest.approx(history[stat].tolist(), rel=1e-6), stat


def test_a_run_logs_its_history_its_speed_its_grids_and_its_config(tmp_path):
    manifest = train_gan(tmp_path)
    reader = events(tmp_path / TENSORBOARD_DIR)
    history = manifest.history_frame()
    assert history["step"].tolist() == [2, 4, 6]
    assert_curves_equal_history(reader, history, GAN_STATS)
    for tag in ("speed/steps_per_second", "speed/eta_seconds"):
        steps, values = series(reader, tag)
        assert steps == [2, 4, 6] and all(v >= 0 for v in values)
    assert series(reader, "speed/eta_seconds")[1][-1] == 0.0  # nothing left at the last step
    grids = reader.Images("samples/fixed_z")
    assert [g.step for g in grids] == [c.step for c in manifest.checkpoints] == [3, 6]
    drawn = live_grid_drawer(tiny_inputs(16))(manifest, manifest.latest)
    decoded = np.asarray(Image.open(io.BytesIO(grids[-1].encoded_image_string)))
    assert decoded.shape[:2] == drawn.shape[:2] == (grids[-1].height, grids[-1].width)
    np.testing.assert_array_equal(decoded[..., 0], drawn[..., 0])  # PNG is lossless: the very grid
    [text] = reader.Tensors("config/text_summary")
    assert text.step == 0 and '"log_every": 2' in text.tensor_proto.string_val[0].decode()


def test_a_resumed_run_continues_its_curves_without_a_duplicated_step(tmp_path):
    train_gan(tmp_path, steps=4, checkpoint_every=4)  # checkpoint at step 4, then the process "crashes"…
    next_second()
    with SummaryWriter(log_dir=str(tmp_path / TENSORBOARD_DIR)) as crashed:  # …after logging steps 6 and 8
        for step in (6, 8):
            for stat in GAN_STATS:
                crashed.add_scalar(f"train/{stat}", CRASHED, step)
            crashed.add_scalar("speed/steps_per_second", CRASHED, step)
        crashed.add_image("samples/fixed_z", np.zeros((4, 4, 3), np.uint8), 8, dataformats="HWC")
    next_second()
    resumed = train_gan(tmp_path, steps=8, checkpoint_every=4)  # restarts at step 4, logs 6 and 8 again
    reader = events(tmp_path / TENSORBOARD_DIR)
    history = resumed.history_frame()
    assert history["step"].tolist() == [2, 4, 6, 8]
    assert_curves_equal_history(reader, history, GAN_STATS)
    assert CRASHED not in series(reader, "speed/steps_per_second")[1]
    assert series(reader, "speed/steps_per_second")[0] == [2, 4, 6, 8]
    grids = reader.Images("samples/fixed_z")
    assert [g.step for g in grids] == [4, 8] and grids[-1].width > 4  # the resumed run's grid, not the crashed one
    assert len(reader.Tensors("config/text_summary")) == 1  # written by the new run only


def test_a_new_run_hides_what_an_attempt_without_a_checkpoint_left(tmp_path):
    with SummaryWriter(log_dir=str(tmp_path / TENSORBOARD_DIR)) as crashed:
        crashed.add_scalar("train/loss_d", CRASHED, 2)
        crashed.add_text("config", "old", 0)
    next_second()
    manifest = train_gan(tmp_path)
    reader = events(tmp_path / TENSORBOARD_DIR)
    assert_curves_equal_history(reader, manifest.history_frame(), ["loss_d"])
    [text] = reader.Tensors("config/text_summary")
    assert '"steps": 6' in text.tensor_proto.string_val[0].decode()


def scores_frame(fd: list[float]) -> pd.DataFrame:
    """What score_checkpoints returns: a row per checkpoint, then the real floor (no step, no bits_per_dim)."""
    frame = pd.DataFrame({"name": ["step_000003", "step_000006", REAL_FLOOR], "step": [3, 6, None],
                          "fd": [*fd, 0.25], "precision": [0.5, 0.75, 0.875], "bits_per_dim": [5.0, 4.5, np.nan]})
    frame["step"] = frame["step"].astype("Int64")
    return frame


def test_rescoring_replaces_the_scores_and_keeps_the_training_curves(tmp_path):
    with SummaryWriter(log_dir=str(tmp_path / TENSORBOARD_DIR)) as training:
        training.add_scalar("train/loss_d", 1.5, 2)
    first = log_checkpoint_scores(tmp_path, scores_frame([3.0, 2.0]))
    assert series(events(first), "scores/fd") == ([3, 6], [3.0, 2.0])
    folder = log_checkpoint_scores(tmp_path, scores_frame([4.0, 1.0]))  # the evaluation config changed
    assert folder == first == tmp_path / TENSORBOARD_DIR / "scores"
    assert len(list(folder.iterdir())) == 1
    reader = events(folder)
    assert series(reader, "scores/fd") == ([3, 6], [4.0, 1.0])
    assert series(reader, "scores/precision") == ([3, 6], [0.5, 0.75])
    assert series(reader, "scores/bits_per_dim") == ([3, 6], [5.0, 4.5])
    assert series(reader, "real_floor/fd") == ([3, 6], [0.25, 0.25])
    assert series(reader, "real_floor/precision") == ([3, 6], [0.875, 0.875])
    assert "real_floor/bits_per_dim" not in reader.Tags()["scalars"]  # real data has no likelihood
    assert series(events(tmp_path / TENSORBOARD_DIR), "train/loss_d") == ([2], [1.5])


def test_a_given_floor_replaces_the_frames(tmp_path):
    reader = events(log_checkpoint_scores(tmp_path, scores_frame([3.0, 2.0]), floor={"fd": 0.5}))
    assert series(reader, "real_floor/fd") == ([3, 6], [0.5, 0.5])
    assert not any(tag.startswith("real_floor/") and tag != "real_floor/fd" for tag in reader.Tags()["scalars"])


def test_a_likelihood_family_logs_its_own_stats(tmp_path):
    inputs = tiny_inputs(8)
    observer = Observers([TensorBoardObserver(tmp_path)], draw_grid=live_grid_drawer(inputs))
    manifest = train_likelihood_run(config(VAE), inputs, tmp_path, device="cpu", log=lambda m: None,
                                    observer=observer)
    reader = events(tmp_path / TENSORBOARD_DIR)
    history = manifest.history_frame()
    stats = ("bits_per_dim", "reconstruction_bpd", "kl_bpd")
    assert list(history.columns) == ["step", *stats] and history["step"].tolist() == [2, 4]
    assert_curves_equal_history(reader, history, stats)
    assert not any(f"train/{stat}" in reader.Tags()["scalars"] for stat in GAN_STATS)
    assert [g.step for g in reader.Images("samples/fixed_z")] == [2, 4]
