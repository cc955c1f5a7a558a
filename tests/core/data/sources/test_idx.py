"""mnist / fashion_mnist / stacked_mnist from tiny IDX files the tests write (never the network)."""

import gzip
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.sources import DatasetError, load_dataset


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format: magic 0x000008<ndim> (unsigned bytes), big-endian dims, then the values."""
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(root: Path, n_train: int = 40, n_test: int = 20, folder: str = "MNIST/raw", gz: bool = False,
                splits: tuple[str, ...] = ("train", "test"), seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """IDX image and label files in torchvision's layout; returns what was written, per split."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        if split not in splits:
            continue
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            path = root / folder / f"{prefix}-{kind}-ubyte"
            path.parent.mkdir(parents=True, exist_ok=True)
            if gz:
                with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
                    handle.write(idx_bytes(array))
            else:
                path.write_bytes(idx_bytes(array))
        written[split] = (images, labels)
    return written


def mnist_config(root: Path, **overrides) -> DatasetConfig:
    return DatasetConfig(**{"source": "mnist", "root": str(root), "image_size": 28, **overrides})


def test_mnist_reads_both_splits_bit_for_bit(tmp_path):
    written = write_mnist(tmp_path)
    data = load_dataset(mnist_config(tmp_path))
    expected = np.concatenate([written["train"][0], written["test"][0]])[:, None]
    np.testing.assert_array_equal(data.images, expected)
    np.testing.assert_array_equal(data.labels, np.concatenate([written["train"][1], written["test"][1]]))
    assert data.class_names == tuple("0123456789") and data.source == "mnist"
    assert (data.split == "held_out").sum() == 10 * round(0.2 * 6)  # 6 per class: stratified
    assert load_dataset(mnist_config(tmp_path)).content_hash() == data.content_hash()


def test_only_the_test_files_are_enough(tmp_path):
    write_mnist(tmp_path, splits=("test",))
    data = load_dataset(mnist_config(tmp_path, splits=["test"]))
    assert len(data.ids) == 20


def test_gzipped_files_in_the_bare_root_resized_to_rgb_32(tmp_path):
    write_mnist(tmp_path, folder=".", gz=True, splits=("test",))
    data = load_dataset(mnist_config(tmp_path, splits=["test"], image_size=32, channels=3))
    assert data.images.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(data.images[:, 0], data.images[:, 2])


def test_fashion_mnist_uses_its_own_folder_and_names(tmp_path):
    write_mnist(tmp_path, folder="FashionMNIST/raw")
    data = load_dataset(mnist_config(tmp_path, source="fashion_mnist"))
    assert data.class_names[0] == "T-shirt/top" and len(data.ids) == 60


def test_missing_root_says_how_to_fetch(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist.*download: true"):
        load_dataset(mnist_config(tmp_path / "nowhere"))


def test_missing_files_without_download_name_them_and_where_to_put_them(tmp_path):
    write_mnist(tmp_path, splits=("test",))
    with pytest.raises(DatasetError) as err:
        load_dataset(mnist_config(tmp_path))
    message = str(err.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "MNIST/raw") in message
    assert "download: true" in message and "dataset.splits" in message


class FakeMNIST:
    """Stands in for torchvision.datasets.MNIST: 'downloads' by writing the files (no network in tests)."""

    calls: ClassVar[list] = []

    def __init__(self, root, train, download):
        FakeMNIST.calls.append((root, train, download))
        write_mnist(Path(root))


def test_download_true_fetches_through_torchvision_only_when_files_are_missing(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    FakeMNIST.calls = []
    assert len(load_dataset(mnist_config(tmp_path, download=True)).ids) == 60
    assert FakeMNIST.calls == [(str(tmp_path), False, True)]
    load_dataset(mnist_config(tmp_path, download=True))
    assert len(FakeMNIST.calls) == 1  # the files are there now: no second fetch


def test_failed_download_says_where_to_copy_the_files(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(root, train, download):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DatasetError, match=rf"downloading MNIST into {tmp_path} failed .*copy the files into "
                                           rf"{tmp_path / 'MNIST/raw'}"):
        load_dataset(mnist_config(tmp_path, download=True))


def test_wrong_magic_number_names_the_file(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST/raw/train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x0d\x03" + path.read_bytes()[4:])  # float data: not MNIST
    with pytest.raises(DatasetError, match=rf"{path}: wrong IDX magic number 0x00000d03"):
        load_dataset(mnist_config(tmp_path))


def test_truncated_file_is_caught_from_its_size(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST/raw/t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=rf"{path}: truncated: the header promises \[20, 28, 28\]"):
        load_dataset(mnist_config(tmp_path))


def test_truncated_gzip_is_caught_while_streaming(tmp_path):
    write_mnist(tmp_path, gz=True, splits=("test",))
    path = tmp_path / "MNIST/raw/t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(DatasetError, match=rf"{path}: truncated"):
        load_dataset(mnist_config(tmp_path, splits=["test"]))


def test_label_count_must_match_the_images(tmp_path):
    write_mnist(tmp_path, splits=("test",))
    path = tmp_path / "MNIST/raw/t10k-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(19, dtype=np.uint8)))
    with pytest.raises(DatasetError, match=rf"{path}: 19 labels for 20 images"):
        load_dataset(mnist_config(tmp_path, splits=["test"]))


def test_stacked_mnist_stacks_three_digits_per_image(tmp_path):
    written = write_mnist(tmp_path, splits=("test",))
    config = mnist_config(tmp_path, source="stacked_mnist", channels=3, splits=["test"], num_samples=300)
    data = load_dataset(config, seed=5)
    assert data.images.shape == (300, 3, 28, 28) and len(data.class_names) == 1000
    images, labels = written["test"][0], written["test"][1].astype(int)
    for row in (0, 123, 299):  # each channel is one source digit, and the label spells the three
        picks = [int(np.flatnonzero((images == data.images[row, c]).all(axis=(1, 2)))[0]) for c in range(3)]
        assert data.labels[row] == 100 * labels[picks[0]] + 10 * labels[picks[1]] + labels[picks[2]]
    assert load_dataset(config, seed=5).content_hash() == data.content_hash()
    assert load_dataset(config, seed=6).content_hash() != data.content_hash()


def test_stacked_mnist_must_be_rgb():
    with pytest.raises(ValueError, match="channels must be 3 for stacked_mnist"):
        DatasetConfig(source="stacked_mnist", channels=1)
