"""The checkpoint picture every live view shows: the gallery's own fixed-z grid (or a 2-D mixture's scatter)."""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np

from gan_assets.core.data.reference import ReferenceBatch
from gan_assets.core.gallery.grids import checkpoint_grid
from gan_assets.core.training.manifest import CheckpointEntry, RunManifest
from gan_assets.core.training.run import RunInputs

LIVE_GRID_SIDE = 8  # the gallery's default grid_size; a live grid is a glance, the gallery draws the chosen size


def live_grid_drawer(inputs: RunInputs, side: int = LIVE_GRID_SIDE
                     ) -> Callable[[RunManifest, CheckpointEntry], np.ndarray]:
    """Draws a checkpoint's grid from the run's reference batch (z and classes), on the CPU, with G's running
    statistics and its moving average where it has one: the gallery's defaults, so the live picture of a checkpoint
    is the one its gallery shows at the same size."""
    side = min(side, int(len(inputs.reference_z) ** 0.5))
    reference = ReferenceBatch(ids=np.arange(len(inputs.reference_z)), labels=inputs.reference_labels,
                               z=inputs.reference_z)
    return partial(checkpoint_grid, reference=reference, grid_size=side, sampling="eval", weights="ema")
