"""Dataset sources: each turns a `DatasetConfig` into an `ImageSet` (or a `PointSet` for 2-D mixtures)
with a stratified train/held-out split, one small module per family.

Every image source ends the same way: resized to the configured square size as uint8, then split per
class with a fixed seed, so the held-out set keeps the train set's class balance (the real floor
depends on it). File sources stream: the final uint8 block is allocated once and filled chunk by
chunk. Bad input raises `DatasetError` naming the problem, the path and the fix, before anything is
written, so the previous materialization stays as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.images import ImageSet, PointSet

from .common import SPLIT_SEED, DatasetError, match_channels, refuse_system_root, require_dir, resize_uint8, stratified_split
from .digits import load_digits
from .image_folder import load_image_folder, walk_root
from .mixtures import load_mixture, mixture_modes, modes_of
from .stacked_mnist import load_stacked_mnist
from .torchvision_sets import SPECS, load_torchvision, present_files

__all__ = ["SPLIT_SEED", "DatasetError", "load_dataset", "source_fingerprint", "match_channels",
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


SYNTHETIC_SOURCES = ("digits", "ring8", "grid25")  # drawn from the config (and the bundled digits) alone


def source_fingerprint(config: DatasetConfig) -> str:
    """sha256 over the paths, sizes and mtimes of the files the source reads, none decoded ('' for the synthetic
    sources): a rerun can tell that files changed on disk though the config did not."""
    if config.source in SYNTHETIC_SOURCES:
        return ""
    try:
        entries = [f"{path}\0{info.st_size}\0{info.st_mtime_ns}" for path in source_files(config)
                   for info in [path.stat()]]
    except (DatasetError, OSError) as err:  # ingesting will say what is wrong
        return f"unreadable: {err}"
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def source_files(config: DatasetConfig) -> list[Path]:
    if config.source == "image_folder":
        root = require_dir(Path(config.root), "image_folder", "point it at a folder of images")
        refuse_system_root(root, "image_folder")
        return sorted(walk_root(root).files.values())
    return present_files(config, SPECS["mnist" if config.source == "stacked_mnist" else config.source])
