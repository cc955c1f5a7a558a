"""What every source shares: config rules, the ingestion-time batch check, and the memory bound."""

import tracemalloc

import numpy as np
import pytest

from gan_assets.core.config import ConfigError, DatasetConfig, dataset_train_size, parse_experiment
from gan_assets.core.data.fits import check_experiment_fits
from gan_assets.core.data.images import to_table
from gan_assets.core.data.preview import class_histogram_markdown, thumbnail
from gan_assets.core.data.sources import DatasetError, load_dataset
from tests.core.data.sources.test_idx import idx_bytes
from tests.core.data.sources.test_image_folder import write_classes


@pytest.mark.parametrize("size", [8, 16, 28, 32, 64])
def test_supported_image_sizes(size):
    assert DatasetConfig(image_size=size).image_size == size


@pytest.mark.parametrize("raw, message", [
    ({"image_size": 24}, "use 8, 16, 28, 32 or 64"),
    ({"channels": 2}, r"neither 1 \(grey\) nor 3"),
    ({"splits": []}, "train and/or test"),
    ({"splits": ["test", "test"]}, "each once"),
    ({"source": "imagenet"}, "dataset.source"),
])
def test_bad_dataset_values_name_the_field(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_experiment({"dataset": raw})


def test_file_sources_defer_the_batch_check_to_ingestion(tmp_path):
    write_classes(tmp_path)  # 2 classes of 5: 8 train images
    for source in ("mnist", "fashion_mnist", "cifar10", "image_folder", "stacked_mnist"):
        assert dataset_train_size(DatasetConfig(source=source, channels=3)) is None
    config = parse_experiment({"dataset": {"source": "image_folder", "root": str(tmp_path), "image_size": 8},
                               "training": {"batch_size": 16}, "reference_batch": {"size": 4},
                               "gallery": {"grid_size": 2}, "evaluation": {"metrics": ["fd"]}})
    # accepted: the folder's size is unknown yet
    data = load_dataset(config.dataset, seed=config.seed)
    with pytest.raises(DatasetError, match=rf"training.batch_size 16 .* 8 training examples .* at {tmp_path}"):
        check_experiment_fits(data, config)
    config.training.batch_size = 8
    check_experiment_fits(data, config)
    with pytest.raises(ConfigError, match="training.batch_size"):  # known sizes still fail up front
        parse_experiment({"dataset": {"source": "ring8", "num_samples": 100}, "training": {"batch_size": 100}})


def test_preview_summarises_many_classes():
    data = load_dataset(DatasetConfig(image_size=8))
    assert class_histogram_markdown(data).count("\n") == 11  # header, rule, 10 classes
    assert thumbnail(data).shape == (2 + 10 * 10, 2 + 8 * 10, 3)
    points = load_dataset(DatasetConfig(source="grid25", num_samples=200))
    picture = thumbnail(points)
    assert picture.shape == (256, 256, 3) and (picture != 255).any(axis=2).sum() > 100


def test_ingestion_peak_memory_stays_below_twice_the_dataset(tmp_path):
    """60,000 28×28 images (the size of MNIST's train split): traced peak of read, split, hash, table."""
    n, images = 60_000, np.zeros((60_000, 28, 28), dtype=np.uint8)
    images[:, 8:20, 10:18] = np.arange(n, dtype=np.uint8)[:, None, None]  # a blob per image: compressible
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes((np.arange(n) % 10).astype(np.uint8)))
    del images
    config = DatasetConfig(source="mnist", root=str(tmp_path), image_size=28, splits=["train"])
    tracemalloc.start()
    try:
        data = load_dataset(config)
        content_hash, table = data.content_hash(), to_table(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data.images.nbytes == n * 784 and table.num_rows == n and len(content_hash) == 64
    print(f"traced peak {peak / data.images.nbytes:.2f}× the dataset")
    assert peak < 2 * data.images.nbytes, f"peak {peak / 2**20:.1f} MiB for {data.images.nbytes / 2**20:.1f} MiB"
