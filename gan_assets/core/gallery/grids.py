"""The sample gallery: fixed-z grids per checkpoint and a progress strip across training.

Every grid is drawn from the reference batch's z, so image i of every checkpoint comes from the
same latent point and progress is comparable image for image. A 2-D mixture's "grid" is a scatter of
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

    A conditional G draws one class per row, so the grid doubles as the per-class view.
    """
    remove_stale_temps(out_dir)  # temps of PNG writes a killed run left
    if manifest.is_points:
        return render_scatter_gallery(manifest, reference=reference, sampling=sampling, out_dir=out_dir, device=device,
                                      weights=weights)
    digest, grids, arrays, strip_rows = hashlib.sha256(), {}, {}, []
    for entry in manifest.checkpoints:
        crash_point("gallery_checkpoint")
        images = checkpoint_samples(manifest, entry, reference=reference, grid_size=grid_size, sampling=sampling,
                                    device=device, weights=weights)
        grid = grid_array(images, nrow=grid_size)
        name = entry.name
        grids[name], arrays[name] = str(save_png(grid, out_dir / f"{name}.png")), grid
        strip_rows.append(images[:grid_size])
        digest.update(grid.tobytes())
    # One row per checkpoint, the same z in each column: training's progress at a glance.
    strip = grid_array(torch.cat(strip_rows), nrow=grid_size)
    digest.update(strip.tobytes())  # the raw strip: the labels' pixels depend on matplotlib's fonts
    labelled = render_labelled_rows(strip, [f"step {entry.step}" for entry in manifest.checkpoints])
    save_png(labelled, out_dir / "progress_labelled.png")
    return Gallery(grids, str(save_png(strip, out_dir / "progress.png")), digest.hexdigest(), arrays, strip, labelled)


@torch.no_grad()
def checkpoint_samples(manifest: RunManifest, entry: CheckpointEntry, *, reference: ReferenceBatch, grid_size: int,
                       sampling: str, device: torch.device = CPU, weights: str = "ema") -> torch.Tensor:
    """The grid_size² images of one checkpoint's fixed-z grid (a conditional G: one class per row)."""
    generator = load_generator(manifest, entry, sampling, *reference.tensors(), device=device, weights=weights)
    z = grid_z(generator, reference, grid_size**2)
    return generate(generator, z, class_labels(generator, len(z), per_row=grid_size))


@torch.no_grad()
def checkpoint_grid(manifest: RunManifest, entry: CheckpointEntry, *, reference: ReferenceBatch, grid_size: int,
                    sampling: str, device: torch.device = CPU, weights: str = "ema") -> np.ndarray:
    """One checkpoint's picture as the gallery draws it: its fixed-z grid, or a 2-D mixture's scatter."""
    if manifest.is_points:
        generator = load_generator(manifest, entry, sampling, *reference.tensors(), device=device, weights=weights)
        z = torch.from_numpy(reference.z)
        points = generate(generator, z, class_labels(generator, len(z))).numpy()
        centers = np.asarray(manifest.modes.centers if manifest.modes else np.zeros((0, 2)), dtype=np.float64)
        return render_scatter_panels([points], centers, [entry.name], std=manifest.modes.std if manifest.modes else None)
    images = checkpoint_samples(manifest, entry, reference=reference, grid_size=grid_size, sampling=sampling,
                                device=device, weights=weights)
    return grid_array(images, nrow=grid_size)


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
