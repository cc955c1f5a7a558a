"""Dataset sources: each turns a `DatasetConfig` into an `ImageSet` (or a `PointSet` for 2-D mixtures)
with a stratified train/held-out split, one small module per family.

Every image source ends the same way: resized to the configured square size as uint8, then split per
class with a fixed seed, so the held-out set keeps the train set's class balance (the real floor
depends on it). File sources stream: the final uint8 block is allocated once and filled chunk by
chunk. Bad input raises `DatasetError` naming the problem, the path and the fix, before anything is
written, so the previous materialization stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.images import ImageSet, PointSet

from .common import SPLIT_SEED, DatasetError, match_channels, resize_uint8, stratified_split
from .digits import load_digits
from .image_folder import load_image_folder
from .mixtures import load_mixture, mixture_modes, modes_of
from .stacked_mnist import load_stacked_mnist
from .torchvision_sets import load_torchvision

__all__ = ["SPLIT_SEED", "DatasetError", "load_dataset", "match_channels",
           "mixture_modes", "modes_of", "resize_uint8", "stratified_split"]

# source → loader(config, seed); only the synthetic sources use the seed.
LOADERS: dict[str, Callable[[DatasetConfig, int], ImageSet | PointSet]] = {
    "digits": lambda config, seed: load_digits(config),
    "mnist": lambda config, seed: load_torchvision(config),
    "fashion_mnist": lambda config, seed: load_torchvision(config),
    "cifar10": lambda config, seed: load_torchvision(config),
    "image_folder": lambda config, seed: load_image_folder(config),
    "ring8": load_mixture,
    "grid25": load_mixture,
    "stacked_mnist": load_stacked_mnist,
}


def load_dataset(config: DatasetConfig, seed: int = 0) -> ImageSet | PointSet:
    """The configured source; `seed` (the experiment's) draws the synthetic sources, never a split."""
    return LOADERS[config.source](config, seed)
