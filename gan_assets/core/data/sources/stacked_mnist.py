"""`stacked_mnist`: three MNIST digits as the R, G, B channels of one image (VEEGAN/PacGAN).

Example i stacks three MNIST images drawn with the experiment seed; its label is 100·a + 10·b + c for
the digits a (R), b (G), c (B), so there are 1,000 modes, named "000".."999". The digits come from the
`mnist` source's files (same root, splits and download rules). Stacked at MNIST's native 28×28, then
resized like every source (28 is stored as is; the networks pad it to 32).
"""

from __future__ import annotations

import numpy as np

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.images import ImageSet
from gan_assets.core.runtime.memory import check_fits_memory

from .common import CHUNK, SPLIT_SEED, fill, stratified_split
from .torchvision_sets import SPECS, locate, read_idx_pairs

MNIST_SIDE = 28
PLACE_VALUES = np.array([100, 10, 1])  # R, G, B digit → mode label


def load_stacked_mnist(config: DatasetConfig, seed: int) -> ImageSet:
    # the uint8 images, three int64 picks, the label, the id and the split's strings per example
    per_example = 3 * config.image_size**2 + 5 * 8 + 32
    check_fits_memory(config.num_samples * per_example, f"dataset.num_samples {config.num_samples}")
    spec = SPECS["mnist"]
    digits, digit_labels = read_idx_pairs(locate(config.model_copy(update={"source": "mnist"}), spec), MNIST_SIDE, 1)
    picks = np.random.default_rng(seed).integers(0, len(digits), size=(config.num_samples, 3))
    labels = (digit_labels[picks] * PLACE_VALUES).sum(axis=1)
    stacks = (digits[picks[s:s + CHUNK]].reshape(-1, 3, MNIST_SIDE, MNIST_SIDE)
              for s in range(0, config.num_samples, CHUNK))
    images = fill(config.num_samples, stacks, config.image_size, 3)
    split = stratified_split(labels, config.held_out_fraction, SPLIT_SEED)
    extra = {"licence": f"built from {spec.licence}", "seed": str(seed), "source_splits": ",".join(config.splits)}
    return ImageSet(images, labels, split, np.arange(config.num_samples, dtype=np.int64), "stacked_mnist",
                    tuple(f"{k:03d}" for k in range(1000)), extra)
