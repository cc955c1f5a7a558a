"""cifar10 from tiny batch pickles the tests write, in the CIFAR-10 python format (never the network)."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.sources import DatasetError, load_dataset

FOLDER = "cifar-10-batches-py"


def write_batch(path: Path, n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)  # rows: 1024 R, 1024 G, 1024 B values
    labels = [i % 10 for i in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump({"batch_label": "testing batch", "data": data, "labels": labels}, handle, protocol=2)
    return data, labels


def cifar_config(root: Path, **overrides) -> DatasetConfig:
    return DatasetConfig(**{"source": "cifar10", "root": str(root), "channels": 3, "splits": ["test"], **overrides})


def test_test_batch_alone_round_trips(tmp_path):
    data, labels = write_batch(tmp_path / FOLDER / "test_batch", 30, seed=0)
    loaded = load_dataset(cifar_config(tmp_path))
    np.testing.assert_array_equal(loaded.images, data.reshape(30, 3, 32, 32))
    np.testing.assert_array_equal(loaded.labels, labels)
    assert loaded.class_names[0] == "airplane" and len(loaded.class_names) == 10


def test_all_six_batches_resized_to_grey_16(tmp_path):
    for index, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        write_batch(tmp_path / FOLDER / name, 20, seed=index)
    loaded = load_dataset(cifar_config(tmp_path, splits=["train", "test"], channels=1, image_size=16))
    assert loaded.images.shape == (120, 1, 16, 16) and len(loaded.labels) == 120
    assert loaded.source == "cifar10" and loaded.extra["source_splits"] == "train,test"


def test_missing_batch_names_it_and_the_fix(tmp_path):
    write_batch(tmp_path / FOLDER / "test_batch", 20, seed=0)
    with pytest.raises(DatasetError, match=r"missing data_batch_1.*download: true"):
        load_dataset(cifar_config(tmp_path, splits=["train"]))


def test_truncated_batch_names_the_file(tmp_path):
    path = tmp_path / FOLDER / "test_batch"
    write_batch(path, 20, seed=0)
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(DatasetError, match=rf"{path}: not a readable CIFAR-10 batch"):
        load_dataset(cifar_config(tmp_path))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / FOLDER / "test_batch"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"data": os.getcwd}, protocol=2))  # any global outside numpy
    with pytest.raises(DatasetError, match=r"posix.getcwd is not allowed"):
        load_dataset(cifar_config(tmp_path))


def test_wrong_content_is_explained(tmp_path):
    path = tmp_path / FOLDER / "test_batch"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4}, protocol=2))
    with pytest.raises(DatasetError, match=rf"{path}: expected a dict with 'data' as uint8 N×3072"):
        load_dataset(cifar_config(tmp_path))
