"""`digits`: scikit-learn's bundled 8×8 digits, the default because it needs no files and no network."""

from __future__ import annotations

import numpy as np

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.images import ImageSet

from .common import SPLIT_SEED, prepare, stratified_split

DIGITS_LEVELS = 16  # sklearn's digits hold 17 grey levels, 0..16
LICENCE = "scikit-learn digits (UCI optdigits), BSD-3-Clause via scikit-learn"


def load_digits(config: DatasetConfig) -> ImageSet:
    images, labels = _raw_digits()
    images = prepare(images, config.image_size, config.channels)
    split = stratified_split(labels, config.held_out_fraction, SPLIT_SEED)
    return ImageSet(images, labels, split, np.arange(len(labels), dtype=np.int64), "digits",
                    tuple(str(d) for d in range(10)), {"licence": LICENCE})


def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sklearn_digits  # bundled with scikit-learn: no download

    bunch = sklearn_digits()
    levels = bunch.images.astype(np.float64)  # (1797, 8, 8) in 0..16
    as_uint8 = np.rint(levels * (255.0 / DIGITS_LEVELS)).astype(np.uint8)
    return as_uint8[:, None], bunch.target.astype(np.int64)
