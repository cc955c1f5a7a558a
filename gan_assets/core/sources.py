"""Dataset sources: each turns a `DatasetConfig` into an `ImageSet` with a stratified split.

Only `digits` is bundled (scikit-learn ships it, so it works offline and in CI). Every source ends in
the same two steps: resize to the configured square size as uint8, then a per-class split with a
fixed seed, so the held-out set has the train set's class balance (the real floor depends on it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gan_assets.core.config import DatasetConfig
from gan_assets.core.images import ImageSet

# The split is part of the dataset's identity, not of the experiment's seed: every experiment on the
# same data must measure against the same held-out images.
SPLIT_SEED = 20161231
DIGITS_LEVELS = 16  # sklearn's digits hold 17 grey levels, 0..16


def load_dataset(config: DatasetConfig) -> ImageSet:
    if config.source != "digits":
        raise ValueError(f"dataset.source {config.source!r} is not available; known sources: digits")
    images, labels = _load_digits()
    images = resize_uint8(images, config.image_size)
    images = match_channels(images, config.channels)
    split = stratified_split(labels, config.held_out_fraction, SPLIT_SEED)
    return ImageSet(images, labels, split, np.arange(len(labels), dtype=np.int64), "digits",
                    tuple(str(d) for d in range(10)),
                    {"licence": "scikit-learn digits (UCI optdigits), BSD-3-Clause via scikit-learn"})


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    levels = bunch.images.astype(np.float64)  # (1797, 8, 8) in 0..16
    as_uint8 = np.rint(levels * (255.0 / DIGITS_LEVELS)).astype(np.uint8)
    return as_uint8[:, None], bunch.target.astype(np.int64)


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of a uint8 N×C×H×W batch, rounded back to uint8."""
    if images.shape[-2:] == (size, size):
        return images
    tensor = torch.from_numpy(images).float()
    shrinking = size < images.shape[-1]
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
    return resized.round().clamp(0, 255).to(torch.uint8).numpy()


def match_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Grey to RGB by repetition, RGB to grey by ITU-R 601 luma; identity otherwise."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1:
        return np.repeat(images, channels, axis=1)
    luma = np.tensordot(np.array([0.299, 0.587, 0.114]), images[:, :3].astype(np.float64), axes=(0, 1))
    return np.rint(luma)[:, None].astype(np.uint8)


def stratified_split(labels: np.ndarray, held_out_fraction: float, seed: int) -> np.ndarray:
    """Per class, a seeded shuffle puts round(fraction·n_c) images in `held_out`, the rest in `train`."""
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), "train", dtype=object)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen = rng.permutation(members)[: round(held_out_fraction * len(members))]
        split[chosen] = "held_out"
    return split.astype(str)
