"""The sample gallery: fixed-z grids per checkpoint and a progress strip across training.

Every grid is drawn from the reference batch's z, so image i of every checkpoint comes from the
same latent point (and class) and progress is comparable image for image; a conditional G's grid has
one row per class and its strip rows span the classes. A 2-D mixture's "grid" is a scatter of
G(z) for every reference z over the mode centres, and its progress strip a row of those scatters.
G runs on the given device; z are fixed on the CPU and the samples come back there to be drawn.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_assets.core.data.reference import ReferenceBatch
from gan_assets.core.evaluation.devices import CPU
from gan_assets.core.evaluation.loading import load_generator
from gan_assets.core.evaluation.sampling import class_labels, generate
from gan_assets.core.gallery.plots import render_labelled_rows, render_scatter_panels
from gan_assets.core.png import grid_array, save_png
from gan_assets.core.runtime.faults import crash_point
from gan_assets.core.storage import remove_stale_temps
from gan_assets.core.training.manifest import CheckpointEntry, RunManifest

GRID_SEED = 0  # the fixed z of a family whose z is not the GAN's prior


@dataclass
class Gallery:
    paths: dict[str, str]  # checkpoint name → its grid PNG
    progress_path: str
    sha256: str  # of the pixels, so identical checkpoints give an identical data version
    arrays: dict[str, np.ndarray]  # checkpoint name → grid pixels, for inline thumbnails
    progress: np.ndarray
    progress_labelled: np.ndarray  # the strip with "step N" beside each row (images) or panel titles (points)

    def manifest(self, best: str) -> dict[str, Any]:
        return {"grids": self.paths, "progress": self.progress_path, "best": self.paths[best], "sha256": self.sha256}


@torch.no_grad()
def render_gallery(manifest: RunManifest, *, reference: ReferenceBatch, grid_size: int, sampling: str,
                   out_dir: Path, device: torch.device = CPU, weights: str = "ema") -> Gallery:
    """Write one grid PNG per checkpoint and `progress.png` into `out_dir`, sampling `weights` (`load_generator`)
    on `device`.

    A conditional G's grid has one row per class (`grid_inputs`), so it doubles as the per-class view, and each
    strip row spans the classes (`strip_samples`). An unconditional G has no classes to ask for: its per-class view
    is the HTML page's class rows, its samples sorted by the evaluator's predicted class (`views.class_rows`).
    """
    remove_stale_temps(out_dir)  # temps of PNG writes a killed run left
    if manifest.is_points:
        return render_scatter_gallery(manifest, reference=reference, sampling=sampling, out_dir=out_dir, device=device,
                                      weights=weights)
    digest, grids, arrays, strip_rows = hashlib.sha256(), {}, {}, []
    for entry in manifest.checkpoints:
        crash_point("gallery_checkpoint")
        generator = load_generator(manifest, entry, sampling, *reference.tensors(), device=device, weights=weights)
        images, columns = grid_samples(generator, reference, grid_size)
        grid = grid_array(images, nrow=columns)
        name = entry.name
        grids[name], arrays[name] = str(save_png(grid, out_dir / f"{name}.png")), grid
        strip_rows.append(strip_samples(generator, reference, grid_size, images))
        digest.update(grid.tobytes())
    # One row per checkpoint, the same z (and class) in each column: training's progress at a glance.
    strip = grid_array(torch.cat(strip_rows), nrow=len(strip_rows[0]))
    digest.update(strip.tobytes())  # the raw strip: the labels' pixels depend on matplotlib's fonts
    labelled = render_labelled_rows(strip, [f"step {entry.step}" for entry in manifest.checkpoints])
    save_png(labelled, out_dir / "progress_labelled.png")
    return Gallery(grids, str(save_png(strip, out_dir / "progress.png")), digest.hexdigest(), arrays, strip, labelled)


@torch.no_grad()
def checkpoint_samples(manifest: RunManifest, entry: CheckpointEntry, *, reference: ReferenceBatch, grid_size: int,
                       sampling: str, device: torch.device = CPU, weights: str = "ema") -> torch.Tensor:
    """The images of one checkpoint's fixed-z grid, row by row: G(z, y) for `grid_inputs`."""
    generator = load_generator(manifest, entry, sampling, *reference.tensors(), device=device, weights=weights)
    return grid_samples(generator, reference, grid_size)[0]


@torch.no_grad()
def checkpoint_grid(manifest: RunManifest, entry: CheckpointEntry, *, reference: ReferenceBatch, grid_size: int,
                    sampling: str, device: torch.device = CPU, weights: str = "ema") -> np.ndarray:
    """One checkpoint's picture as the gallery draws it: its fixed-z grid (the same layout), or a 2-D mixture's
    scatter."""
    generator = load_generator(manifest, entry, sampling, *reference.tensors(), device=device, weights=weights)
    if manifest.is_points:
        z = torch.from_numpy(reference.z)
        points = generate(generator, z, class_labels(generator, len(z))).numpy()
        centers = np.asarray(manifest.modes.centers if manifest.modes else np.zeros((0, 2)), dtype=np.float64)
        return render_scatter_panels([points], centers, [entry.name], std=manifest.modes.std if manifest.modes else None)
    images, columns = grid_samples(generator, reference, grid_size)
    return grid_array(images, nrow=columns)


def grid_samples(generator: torch.nn.Module, reference: ReferenceBatch, grid_size: int) -> tuple[torch.Tensor, int]:
    """A checkpoint's grid images, row by row, and the grid's column count."""
    z, labels, columns = grid_inputs(generator, reference, grid_size)
    return generate(generator, z, labels), columns


def grid_inputs(generator: torch.nn.Module, reference: ReferenceBatch, grid_size: int
                ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """The z, labels and column count of a checkpoint's grid, row by row.

    An unconditional G: grid_size × grid_size of the reference z, so checkpoints compare image for image. A
    conditional G with K classes: K rows, row r all class r, so every class shows whatever grid_size; column c
    is the same z in every row (one latent point across the classes). Columns are grid_size, fewer (at least 1)
    where K × grid_size images would outnumber the reference z, the bound the config puts on grid_size².
    """
    if not generator.conditional:
        return grid_z(generator, reference, grid_size**2), None, grid_size
    k = generator.num_classes
    columns = max(1, min(grid_size, len(reference.z) // k))
    z = grid_z(generator, reference, columns)
    return z.repeat(k, *[1] * (z.dim() - 1)), class_labels(generator, k * columns, per_row=columns), columns


def strip_samples(generator: torch.nn.Module, reference: ReferenceBatch, grid_size: int,
                  grid_images: torch.Tensor) -> torch.Tensor:
    """One checkpoint's row of the progress strip.

    An unconditional G: its grid's first row (the first grid_size reference z). A conditional G: column j draws
    class j mod K with the j-th z, over max(grid_size, K) columns (at most the reference z) so the row shows every
    class at that step, where a grid row would show one class only.
    """
    if not generator.conditional:
        return grid_images[:grid_size]
    columns = min(max(grid_size, generator.num_classes), len(reference.z))
    z = grid_z(generator, reference, columns)
    return generate(generator, z, class_labels(generator, columns))


def grid_z(generator: torch.nn.Module, reference: ReferenceBatch, n: int) -> torch.Tensor:
    """The reference z when the sampler draws from the GAN's prior; another family's z (a VAE code, Real NVP's
    image-sized latent, the FVBN's per-pixel draws) are as fixed, from their own seeded stream."""
    if generator.z_dim == reference.z.shape[1]:
        return torch.from_numpy(reference.z[:n])
    return torch.randn(n, generator.z_dim, generator=torch.Generator().manual_seed(GRID_SEED))


@torch.no_grad()
def render_scatter_gallery(manifest: RunManifest, *, reference: ReferenceBatch, sampling: str,
                           out_dir: Path, device: torch.device = CPU, weights: str = "ema") -> Gallery:
    """2-D mixtures: a scatter PNG per checkpoint and `progress.png`, a row of them, into `out_dir`.

    All reference z are drawn (a scatter needs hundreds of points, a grid only grid_size²); the data version
    hashes the coordinates, not the rendered pixels, which depend on matplotlib's version.
    """
    z = torch.from_numpy(reference.z)
    centers = np.asarray(manifest.modes.centers if manifest.modes else np.zeros((0, 2)), dtype=np.float64)
    std = manifest.modes.std if manifest.modes else None
    digest, paths, arrays, panels = hashlib.sha256(), {}, {}, {}
    for entry in manifest.checkpoints:
        generator = load_generator(manifest, entry, sampling, *reference.tensors(), device=device, weights=weights)
        points = generate(generator, z, class_labels(generator, len(z))).numpy()
        name = entry.name
        arrays[name] = render_scatter_panels([points], centers, [name], std=std)
        paths[name], panels[name] = str(save_png(arrays[name], out_dir / f"{name}.png")), points
        digest.update(np.ascontiguousarray(points, dtype="<f4").tobytes())
    strip = render_scatter_panels(list(panels.values()), centers, list(panels), side_inches=2.2, std=std)
    return Gallery(paths, str(save_png(strip, out_dir / "progress.png")), digest.hexdigest(), arrays, strip, strip)
