"""The sample gallery: fixed-z grids per checkpoint and a progress strip across training.

Every grid is drawn from the reference batch's z, so image i of every checkpoint comes from the
same latent point and progress is comparable image for image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_assets.core.gallery import grid_array, save_png
from gan_assets.core.reference import ReferenceBatch
from gan_assets.core.sampling import class_labels, for_sampling, generate
from gan_assets.core.trainer import load_generator


@dataclass
class Gallery:
    paths: dict[str, str]  # checkpoint name → its grid PNG
    progress_path: str
    sha256: str  # of the pixels, so identical checkpoints give an identical data version
    arrays: dict[str, np.ndarray]  # checkpoint name → grid pixels, for inline thumbnails
    progress: np.ndarray

    def manifest(self, best: str) -> dict[str, Any]:
        return {"grids": self.paths, "progress": self.progress_path, "best": self.paths[best], "sha256": self.sha256}


@torch.no_grad()
def render_gallery(run_dir: Path, manifest: dict[str, Any], reference: ReferenceBatch, grid_size: int,
                   sampling: str, out_dir: Path) -> Gallery:
    """Write one grid PNG per checkpoint and `progress.png` into `out_dir`.

    A conditional G draws one class per row, so the grid doubles as the per-class view.
    """
    z = torch.from_numpy(reference.z[: grid_size**2])
    digest, grids, arrays, strip_rows = hashlib.sha256(), {}, {}, []
    for entry in manifest["checkpoints"]:
        generator = for_sampling(load_generator(run_dir, manifest, entry), sampling, *reference.tensors())
        images = generate(generator, z, class_labels(generator, len(z), per_row=grid_size))
        grid = grid_array(images, nrow=grid_size)
        name = f"step_{entry['step']:06d}"
        grids[name], arrays[name] = str(save_png(grid, out_dir / f"{name}.png")), grid
        strip_rows.append(images[:grid_size])
        digest.update(grid.tobytes())
    # One row per checkpoint, the same z in each column: training's progress at a glance.
    strip = grid_array(torch.cat(strip_rows), nrow=grid_size)
    digest.update(strip.tobytes())
    return Gallery(grids, str(save_png(strip, out_dir / "progress.png")), digest.hexdigest(), arrays, strip)
