"""`ring8`, `grid25`: PacGAN's 2-D Gaussian mixtures, with mode labels and the modes metrics need.

ring8: 8 modes at angles 2πk/8 on a circle of radius 1, std 0.01; grid25: means at {−4,−2,0,2,4}²,
std 0.05 (PacGAN, Lin et al. 2018, after VEEGAN). The centers are defined here (`ring_centers`, `grid_centers`)
and the mode metrics read them from here, so data and metrics cannot disagree on where the modes are.
The mixture is balanced: mode k holds n // M points, plus one for the first n % M modes; positions are
drawn with the experiment seed. So the empirical mode histogram is the uniform one the reverse-KL
metric compares against, and the train size is known before sampling (config.dataset_train_size).
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.images import PointSet
from gan_assets.core.runtime.memory import check_fits_memory

from .common import SPLIT_SEED, stratified_split

MIXTURE_STD = {"ring8": 0.01, "grid25": 0.05}  # per-coordinate standard deviation of every mode


def ring_centers(num_modes: int = 8, radius: float = 1.0) -> torch.Tensor:
    """(M, 2) centers at angles 2πk/M, k = 0..M-1.

    Not linspace(0, 2π, M): that repeats angle 0 as 2π and yields only M-1 distinct modes.
    """
    angles = 2 * math.pi * torch.arange(num_modes, dtype=torch.float64) / num_modes
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def grid_centers(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    """(side², 2) centers of a side x side grid centred on the origin (5, 2: the -4..4 grid of VEEGAN/PacGAN)."""
    axis = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    return torch.cartesian_prod(axis, axis)


# Bytes per point while drawing and splitting: float32 x/y, float64 noise, int64 label and id, the split's strings.
POINT_BYTES = 80


def mixture_modes(source: str) -> tuple[torch.Tensor, float]:
    """(M, 2) float64 mode centers and the mode std of a mixture source: the metrics' MetricContext inputs."""
    centers = ring_centers(8, radius=1.0) if source == "ring8" else grid_centers(5, spacing=2.0)
    return centers, MIXTURE_STD[source]


def modes_of(data: PointSet) -> tuple[torch.Tensor, float]:
    """The same, read back from a stored PointSet (its schema metadata), for stages given only the table."""
    return torch.tensor(json.loads(data.extra["mode_centers"]), dtype=torch.float64), float(data.extra["mode_std"])


def load_mixture(config: DatasetConfig, seed: int) -> PointSet:
    check_fits_memory(config.num_samples * POINT_BYTES, f"dataset.num_samples {config.num_samples}")
    centers, std = mixture_modes(config.source)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(config.num_samples) % len(centers))
    noise = rng.standard_normal((config.num_samples, 2))
    points = (centers.numpy()[labels] + std * noise).astype(np.float32)
    split = stratified_split(labels, config.held_out_fraction, SPLIT_SEED)
    extra = {"mode_centers": json.dumps(centers.tolist()), "mode_std": repr(std), "seed": str(seed),
             "licence": "synthetic (PacGAN's 2-D mixtures), no licence needed"}
    return PointSet(points, labels.astype(np.int64), split, np.arange(config.num_samples, dtype=np.int64),
                    config.source, tuple(str(k) for k in range(len(centers))), extra)
