"""The checks the config cannot make up front: each setting against the data it will meet.

Every stage that reads the data runs `check_experiment_fits` before its work (an edit reruns only the stages that
read the edited section); the `dataset` asset also runs `check_dataset_is_usable`, right after reading, so a value
that would fail after minutes of training (a gallery asking for more neighbours than there are images, a
held-out split too small for a metric, held-out images that are copies of training ones) fails at once,
naming the field and the limit.
"""

from __future__ import annotations

import hashlib

import numpy as np

from gan_assets.core.config import PRECISION_RECALL_K, ExperimentConfig
from gan_assets.core.data.images import ImageSet, PointSet
from gan_assets.core.data.sources.common import DatasetError
from gan_assets.core.runtime.memory import check_fits_memory

# Float32 copies of the generated samples scoring holds at once: the images, and their evaluator inputs.
SCORING_COPIES = 2


class DataFitError(DatasetError):
    """A setting the data cannot satisfy; the message names the field, the limit and the data."""


def check_experiment_fits(data: ImageSet | PointSet, config: ExperimentConfig) -> None:
    train = int((data.split == "train").sum())
    held_out = len(data.split) - train
    where = _where(data, config)
    for field, value in (("training.batch_size", config.training.batch_size),
                         ("reference_batch.size", config.reference_batch.size),
                         ("gallery.neighbours", config.gallery.neighbours)):
        if value > train:
            raise DataFitError(f"{field} {value} is larger than the {train} training examples of {where}: "
                               "lower it or add data")
    check_splits_fit_metrics(train, held_out, config, where)
    per_sample = int(np.prod(data.shape)) * 4 * SCORING_COPIES
    check_fits_memory(config.evaluation.num_samples * per_sample, f"evaluation.num_samples "
                      f"{config.evaluation.num_samples} (of shape {list(data.shape)})")


def _where(data: ImageSet | PointSet, config: ExperimentConfig) -> str:
    files = data.source not in ("digits", "ring8", "grid25", "stacked_mnist")
    return f"dataset.source {data.source!r}" + (f" at {config.dataset.root}" if files else "")


def check_splits_fit_metrics(train: int, held_out: int, config: ExperimentConfig, where: str) -> None:
    """The real floor scores the held-out split against the train split with every metric: a covariance (FD, KID)
    needs two examples on each side, precision/recall's k-NN needs k+1."""
    need = PRECISION_RECALL_K + 1 if "precision_recall" in config.evaluation.metrics else 2
    short = [(name, n) for name, n in (("held-out", held_out), ("training", train)) if n < need]
    if short:
        name, n = short[0]
        raise DataFitError(f"the {name} split of {where} has {n} example(s); evaluation.metrics "
                           f"{config.evaluation.metrics} need at least {need} in each split: add data or raise "
                           f"dataset.held_out_fraction ({config.dataset.held_out_fraction})")


def check_dataset_is_usable(data: ImageSet | PointSet, config: ExperimentConfig) -> None:
    """What the data alone must satisfy, whatever the other settings: checked once, where the data is read (the
    `dataset` asset), not by every stage, as it changes only with the data."""
    if isinstance(data, ImageSet):
        check_held_out_is_not_train(data, _where(data, config))


def check_held_out_is_not_train(data: ImageSet, where: str) -> None:
    """Held-out images that are byte-for-byte training images (the same file twice, a folder linked twice) make
    the real floor's nearest-neighbour distance zero, and nn_ratio undefined: refuse when most of them are."""
    train_rows = {_digest(row) for row in data.subset("train").examples}
    held = data.subset("held_out").examples
    copies = sum(_digest(row) in train_rows for row in held)
    if copies > len(held) // 2:
        raise DataFitError(f"{copies} of the {len(held)} held-out images of {where} are exact copies of training "
                           "images (the same file under two names, or a folder linked twice?): remove the copies")


def _digest(row: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest()
