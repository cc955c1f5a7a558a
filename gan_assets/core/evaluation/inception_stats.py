"""The real data's Inception features and statistics, computed once per (dataset, weights, resize) and kept.

Embedding the real split at 299x299 is most of an Inception score's cost (50,000 CIFAR-10 images: minutes on a GPU,
an hour or more on a CPU) and its answer depends only on the data's content, the weights file and the resize. So it is
stored under the storage root, in `inception_stats/<dataset sha256>-<weights sha256>-<resize>.v<format>.npz` (hash
prefixes in the name, the full hashes inside, checked on read), written atomically, and read back by every checkpoint,
every rematerialization and every experiment over the same data. The file holds the train split's pool features
(float32, as the network gives them: KID and precision/recall read them), their mean and covariance (float64: FID's
reference statistics) and the held-out split's features (the real floor's row). A file that cannot be read, or whose
hashes are not the ones asked for, is computed again and replaced; STATS_FORMAT changes when the contents do.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gan_assets.core.data.images import ImageSet
from gan_assets.core.evaluation.devices import module_device
from gan_assets.core.evaluation.metrics.distances import gaussian_stats
from gan_assets.core.evaluation.metrics.inception import InceptionExtractor
from gan_assets.core.storage import atomic_path

STATS_FOLDER = "inception_stats"
STATS_FORMAT = 1  # the version in the file name: a change of contents makes new files, never misreads old ones


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value, so no __eq__
class RealInceptionFeatures:
    """What every Inception score reads of the real data, on the CPU."""

    train: Tensor  # (n_train, 2048) float32 pool features of the train split
    mu: Tensor  # (2048,) float64 mean of `train`
    sigma: Tensor  # (2048, 2048) float64 unbiased covariance of `train`
    held_out: Tensor  # (n_held_out, 2048) float32 pool features of the held-out split (the real floor)


def stats_folder(run_dir: Path) -> Path:
    """Where reference statistics are kept: `<storage root>/inception_stats`, shared by every experiment and run, for a
    run in the store's layout (`<root>/experiments/<key>/runs/<run>`); beside the run for one elsewhere."""
    parts = Path(run_dir).parts
    if len(parts) >= 4 and parts[-2] == "runs" and parts[-4] == "experiments":
        return Path(run_dir).parents[3] / STATS_FOLDER
    return Path(run_dir) / STATS_FOLDER


def stats_file(folder: Path, dataset_sha256: str, extractor: InceptionExtractor) -> Path:
    return Path(folder) / f"{dataset_sha256[:16]}-{extractor.sha256[:16]}-{extractor.resize}.v{STATS_FORMAT}.npz"


def real_inception_features(extractor: InceptionExtractor, data: ImageSet,
                            folder: Path | None = None) -> RealInceptionFeatures:
    """The real splits' Inception features and statistics: read from `folder` when computed before, else computed
    (on the extractor's device) and stored there; `folder` None: computed, not stored."""
    if folder is None:
        return compute_real_features(extractor, data)
    keys = {"dataset_sha256": data.content_hash(), "weights_sha256": extractor.sha256, "resize": extractor.resize,
            "format": str(STATS_FORMAT)}
    path = stats_file(folder, keys["dataset_sha256"], extractor)
    stored = read_real_features(path, keys)
    if stored is not None:
        return stored
    real = compute_real_features(extractor, data)
    write_real_features(real, path, keys)
    return real


def compute_real_features(extractor: InceptionExtractor, data: ImageSet) -> RealInceptionFeatures:
    """Both real splits through the network, from their stored uint8 bytes."""
    device = module_device(extractor.model)
    train, held_out = (extractor.features(torch.from_numpy(data.subset(split).examples).to(device)).float().cpu()
                       for split in ("train", "held_out"))
    mu, sigma = gaussian_stats(train)
    return RealInceptionFeatures(train, mu, sigma, held_out)


def write_real_features(real: RealInceptionFeatures, path: Path, keys: dict[str, str]) -> Path:
    """One .npz, atomically: a reader sees the whole file or none."""
    arrays = {name: getattr(real, name).numpy() for name in ("train", "mu", "sigma", "held_out")}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a handle: np.savez would add .npz to a name
        np.savez(handle, **arrays, **{k: np.array(v) for k, v in keys.items()})
    return path


def read_real_features(path: Path, keys: dict[str, str]) -> RealInceptionFeatures | None:
    """The stored features, if `path` is readable and was written for exactly `keys`; else None (compute anew)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if any(str(stored[k]) != v for k, v in keys.items()):
                return None
            return RealInceptionFeatures(*(torch.from_numpy(stored[name].copy())
                                           for name in ("train", "mu", "sigma", "held_out")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # truncated, not an npz, an older layout
        return None
