"""The gallery's grid layout: a conditional G shows every class (one row per class, one z per column) and its
progress strip spans the classes; an unconditional G keeps grid_size × grid_size of the reference z."""

from pathlib import Path

import numpy as np
import pytest
import torch

from gan_assets.core.config import parse_experiment
from gan_assets.core.data.images import rows_by_id
from gan_assets.core.data.reference import ReferenceBatch, select_reference
from gan_assets.core.data.sources import load_dataset
from gan_assets.core.evaluation.loading import load_generator
from gan_assets.core.evaluation.sampling import generate
from gan_assets.core.gallery.grids import checkpoint_grid, checkpoint_samples, render_gallery
from gan_assets.core.png import grid_array
from gan_assets.core.training.run import RunInputs, train_run

SIDE, TILE, CLASSES, GRID = 16, 16 + 2, 10, 4  # image side, a tile with grid_array's 2 px padding
RAW = {"seed": 3, "dataset": {"image_size": SIDE}, "reference_batch": {"size": 48},
       "model": {"z_dim": 8, "g_width": 8, "d_width": 8},
       "training": {"steps": 2, "batch_size": 16, "checkpoint_every": 1, "log_every": 1, "precision": "fp32"},
       "gallery": {"grid_size": GRID}}


def tiles(array: np.ndarray) -> tuple[int, int]:
    """(rows, columns) of a grid_array picture."""
    return (array.shape[0] - 2) // TILE, (array.shape[1] - 2) // TILE


def tiny_run(run_dir: Path, conditional: bool):
    """A 2-step run with two checkpoints, its reference batch of 48 z (room for 10 classes × 4 columns)."""
    torch.set_num_threads(1)
    config = parse_experiment({**RAW, "model": {**RAW["model"], "conditional": conditional}})
    data = load_dataset(config.dataset)
    train = data.subset("train")
    reference = select_reference(train.ids, train.labels, 48, 8, config.seed)
    inputs = RunInputs(images=train.images, labels=train.labels, num_classes=CLASSES,
                       reference_images=data.images[rows_by_id(data, reference.ids)],
                       reference_labels=reference.labels, reference_z=reference.z)
    return reference, train_run(config, inputs, run_dir, log=lambda message: None)


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    reference, manifest = tiny_run(tmp_path_factory.mktemp("conditional"), conditional=True)
    gallery = render_gallery(manifest, reference=reference, grid_size=GRID, sampling="eval",
                             out_dir=tmp_path_factory.mktemp("gallery"))
    return reference, manifest, gallery


def test_a_conditional_grid_has_one_row_per_class_and_one_z_per_column(conditional):
    reference, manifest, gallery = conditional
    for entry in manifest.checkpoints:
        assert tiles(gallery.arrays[entry.name]) == (CLASSES, GRID)  # every class, whatever grid_size
        generator = load_generator(manifest, entry, "eval", *reference.tensors())
        samples = checkpoint_samples(manifest, entry, reference=reference, grid_size=GRID, sampling="eval")
        z = torch.from_numpy(reference.z[:GRID])
        for r, row in enumerate(samples.reshape(CLASSES, GRID, *samples.shape[1:])):
            torch.testing.assert_close(row, generate(generator, z, torch.full((GRID,), r)))
        assert np.array_equal(gallery.arrays[entry.name], grid_array(samples, nrow=GRID))


def test_a_conditional_strip_row_shows_every_class_at_each_step(conditional):
    reference, manifest, gallery = conditional
    assert tiles(gallery.progress) == (len(manifest.checkpoints), CLASSES)  # max(grid_size, K) columns
    z = torch.from_numpy(reference.z[:CLASSES])
    rows = [generate(load_generator(manifest, entry, "eval", *reference.tensors()), z, torch.arange(CLASSES))
            for entry in manifest.checkpoints]
    assert np.array_equal(gallery.progress, grid_array(torch.cat(rows), nrow=CLASSES))


def test_the_live_grid_of_a_conditional_checkpoint_is_the_gallerys(conditional):
    reference, manifest, gallery = conditional
    entry = manifest.latest
    live = checkpoint_grid(manifest, entry, reference=reference, grid_size=GRID, sampling="eval")
    assert np.array_equal(live, gallery.arrays[entry.name])


def test_too_few_reference_z_for_every_class_at_grid_size_gives_fewer_columns(conditional):
    reference, manifest, _ = conditional
    small = ReferenceBatch(ids=reference.ids[:16], labels=reference.labels[:16], z=reference.z[:16])
    grid = checkpoint_grid(manifest, manifest.latest, reference=small, grid_size=GRID, sampling="eval")
    assert tiles(grid) == (CLASSES, 1)  # 16 z // 10 classes: one column, every class still shown


def test_an_unconditional_grid_keeps_grid_size_squared_of_the_reference_z(tmp_path):
    reference, manifest = tiny_run(tmp_path / "run", conditional=False)
    gallery = render_gallery(manifest, reference=reference, grid_size=GRID, sampling="eval", out_dir=tmp_path / "out")
    entry = manifest.latest
    assert tiles(gallery.arrays[entry.name]) == (GRID, GRID)
    generator = load_generator(manifest, entry, "eval", *reference.tensors())
    images = generate(generator, torch.from_numpy(reference.z[:GRID**2]))
    assert np.array_equal(gallery.arrays[entry.name], grid_array(images, nrow=GRID))
    assert tiles(gallery.progress) == (len(manifest.checkpoints), GRID)  # the strip: the grid's first row, unchanged
