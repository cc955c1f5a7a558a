"""The settings the config cannot check alone fail at ingestion, against the data, naming the field and limit."""

import re
from dataclasses import replace

import numpy as np
import pytest

from gan_assets.core.config import DatasetConfig, parse_experiment
from gan_assets.core.data.fits import DataFitError, check_dataset_is_usable, check_experiment_fits
from gan_assets.core.data.sources import load_dataset
from gan_assets.core.runtime import memory
from gan_assets.core.runtime.memory import MemoryLimitError


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DatasetConfig(image_size=8))


def few_digits(digits, per_class: int):
    """The first `per_class` images of every class, split as the source splits them (fraction 0.2)."""
    keep = np.concatenate([np.flatnonzero(digits.labels == k)[:per_class] for k in range(10)])
    split = np.where(np.arange(len(keep)) % per_class < round(0.2 * per_class), "held_out", "train")
    return replace(digits, images=digits.images[keep], labels=digits.labels[keep], split=split, ids=digits.ids[keep])


def test_the_shipped_digits_fit_every_default(digits):
    check_experiment_fits(digits, parse_experiment({}))
    check_dataset_is_usable(digits, parse_experiment({}))


def test_more_neighbours_than_training_images_is_named(digits):
    data = few_digits(digits, 3)  # 20 train, 10 held-out
    config = parse_experiment({"gallery": {"neighbours": 21, "grid_size": 1}, "training": {"batch_size": 2},
                               "reference_batch": {"size": 2}})
    with pytest.raises(DataFitError, match="gallery.neighbours 21 is larger than the 20 training examples"):
        check_experiment_fits(data, config)


def test_a_held_out_split_too_small_for_precision_recall_is_named(digits):
    data = few_digits(digits, 3)
    data = replace(data, split=np.where(np.arange(30) < 3, "held_out", "train"))  # 3 held-out images
    config = parse_experiment({"gallery": {"grid_size": 1}, "training": {"batch_size": 2},
                               "reference_batch": {"size": 2}})
    with pytest.raises(DataFitError, match=re.escape("the held-out split of dataset.source 'digits' has 3 example(s); "
                                                     "evaluation.metrics") + ".* need at least 4 in each split"):
        check_experiment_fits(data, config)
    check_experiment_fits(data, config.model_copy(update={"evaluation": config.evaluation.model_copy(
        update={"metrics": ["fd"]})}))  # two are enough for FD's covariance


def test_held_out_images_that_copy_training_images_are_refused(digits):
    train = np.flatnonzero(digits.split == "train")
    held = np.flatnonzero(digits.split == "held_out")
    images = digits.images.copy()
    copied = held[: len(held) // 2 + 1]  # just over half: the median held-out → train distance is then zero
    images[copied] = images[train[: len(copied)]]
    with pytest.raises(DataFitError, match=f"{len(copied)} of the {len(held)} held-out images .* exact copies"):
        check_dataset_is_usable(replace(digits, images=images), parse_experiment({}))
    images[copied[0]] = digits.images[copied[0]]  # exactly half: the median is still a real distance
    check_dataset_is_usable(replace(digits, images=images), parse_experiment({}))


def test_scoring_more_samples_than_memory_holds_is_named(digits, monkeypatch):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2**30)
    config = parse_experiment({"evaluation": {"num_samples": 4 * 10**6}})  # 4e6 × 64 pixels × 4 bytes × 2 copies
    with pytest.raises(MemoryLimitError, match=r"evaluation.num_samples 4000000 \(of shape \[1, 8, 8\]\) needs at "
                                               r"least 1.9 GiB of memory; this machine has 1.0 GiB: lower it"):
        check_experiment_fits(digits, config)
    check_experiment_fits(digits, parse_experiment({"evaluation": {"num_samples": 10**6}}))  # 0.5 GiB fits


def test_a_mixture_larger_than_memory_fails_before_allocating():
    with pytest.raises(MemoryLimitError, match=r"dataset.num_samples 100000000000 needs at least 7,450.6 GiB"):
        load_dataset(DatasetConfig(source="ring8", num_samples=10**11))
