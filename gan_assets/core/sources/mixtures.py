"""`ring8`, `grid25`: PacGAN's 2-D Gaussian mixtures, with mode labels and the modes metrics need.

ring8: 8 modes at angles 2πk/8 on a circle of radius 1, std 0.01; grid25: means at {−4,−2,0,2,4}²,
std 0.05 (PacGAN, Lin et al. 2018, after VEEGAN). The centers come from the metrics package
(`ring_centers`, `grid_centers`), so data and metrics cannot disagree on where the modes are.
The mixture is balanced: mode k holds n // M points, plus one for the first n % M modes; positions are
drawn with the experiment seed. So the empirical mode histogram is the uniform one the reverse-KL
metric compares against, and the train size is known before sampling (config.dataset_train_size).
"""

from __future__ import annotations

import json

import numpy as np
import torch

from gan_assets.core.config import DatasetConfig
from gan_assets.core.images import PointSet
from gan_assets.core.metrics import grid_centers, ring_centers

from .common import SPLIT_SEED, stratified_split

MIXTURE_STD = {"ring8": 0.01, "grid25": 0.05}  # per-coordinate standard deviation of every mode


def mixture_modes(source: str) -> tuple[torch.Tensor, float]:
    """(M, 2) float64 mode centers and the mode std of a mixture source: the metrics' MetricContext inputs."""
    centers = ring_centers(8, radius=1.0) if source == "ring8" else grid_centers(5, spacing=2.0)
    return centers, MIXTURE_STD[source]


def modes_of(data: PointSet) -> tuple[torch.Tensor, float]:
    """The same, read back from a stored PointSet (its schema metadata), for stages given only the table."""
    return torch.tensor(json.loads(data.extra["mode_centers"]), dtype=torch.float64), float(data.extra["mode_std"])


def load_mixture(config: DatasetConfig, seed: int) -> PointSet:
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
