"""`mnist`, `fashion_mnist`, `cifar10`: torchvision's file layouts, read by a streaming, checking reader.

torchvision's dataset classes say where the files live (`<root>/MNIST/raw/`, `<root>/FashionMNIST/raw/`,
`<root>/cifar-10-batches-py/`; the bare `root` is accepted too) and fetch them when `download: true`.
They are not used to read: they demand every split (an md5 over all files, so the 10k test files
alone are refused), hold the raw file and a copy at once, and meet a bad file with a bare assert.
The readers here check each header against the file size first, name the file at fault, and stream
chunks into the final uint8 block. Images keep their native size when `image_size` equals it (28 for
MNIST: the networks pad it to 32, see gan_assets/core/models/gan/networks.py).
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.images import ImageSet

from .common import CHUNK, SPLIT_SEED, DatasetError, fill, require_dir, stratified_split

IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CIFAR_IMAGE_BYTES = 3 * 32 * 32
PICKLE_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.numeric", "_frombuffer"),
                  ("numpy.core.numeric", "_frombuffer"), ("_codecs", "encode")}


@dataclass(frozen=True)
class Spec:
    torchvision_class: str  # in torchvision.datasets: its layout and its downloader
    folder: str  # under root, where torchvision keeps the files
    class_names: tuple[str, ...]
    licence: str


SPECS = {
    "mnist": Spec("MNIST", "MNIST/raw", tuple(str(d) for d in range(10)),
                  "MNIST (LeCun, Cortes & Burges); no licence ships with it, commonly cited as CC BY-SA 3.0"),
    "fashion_mnist": Spec("FashionMNIST", "FashionMNIST/raw",
                          ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                           "Bag", "Ankle boot"), "Fashion-MNIST (Zalando Research), MIT licence"),
    "cifar10": Spec("CIFAR10", "cifar-10-batches-py",
                    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
                    "CIFAR-10 (Krizhevsky 2009); cite the tech report, no formal licence"),
}


def load_torchvision(config: DatasetConfig) -> ImageSet:
    spec = SPECS[config.source]
    if config.source == "cifar10":
        images, labels = read_cifar(locate(config, spec), config.image_size, config.channels)
    else:
        images, labels = read_idx_pairs(locate(config, spec), config.image_size, config.channels)
    split = stratified_split(labels, config.held_out_fraction, SPLIT_SEED)
    return ImageSet(images, labels, split, np.arange(len(labels), dtype=np.int64), config.source,
                    spec.class_names, {"licence": spec.licence, "source_splits": ",".join(config.splits)})


def file_names(config: DatasetConfig) -> list[str]:
    """The files (without `.gz`) the configured splits need."""
    return [n for s in config.splits for n in (CIFAR_FILES if config.source == "cifar10" else IDX_FILES)[s]]


def present_files(config: DatasetConfig, spec: Spec) -> list[Path]:
    """The files the configured splits would read now, never fetching; empty when some are missing."""
    return _find(Path(config.root), spec, file_names(config)) or []


def locate(config: DatasetConfig, spec: Spec) -> list[Path]:
    """Every file the configured splits need, fetched first only when `download: true` says so."""
    names = file_names(config)
    root = Path(config.root)
    if config.download and _find(root, spec, names) is None:
        _fetch(root, spec)
    found = _find(root, spec, names)
    if found is None:
        _explain_missing(root, spec, names, config.source, config.download)
    return found  # type: ignore[return-value]


def _find(root: Path, spec: Spec, names: list[str]) -> list[Path] | None:
    for folder in (root / spec.folder, root):
        paths = [_existing(folder / name) for name in names]
        if all(paths):
            return paths  # type: ignore[return-value]
    return None


def _existing(path: Path) -> Path | None:
    gz = path.with_name(path.name + ".gz")
    return path if path.is_file() else gz if gz.is_file() else None


def _explain_missing(root: Path, spec: Spec, names: list[str], source: str, download: bool) -> None:
    note = "extracted from cifar-10-python.tar.gz" if source == "cifar10" else "IDX files, optionally .gz"
    fix = (f"set dataset.download: true to fetch {source} with torchvision.datasets.{spec.torchvision_class}, "
           f"or put {', '.join(names)} ({note}) in {root / spec.folder}; "
           "to use only the files you have, list them in dataset.splits (train, test)")
    folder = require_dir(root, source, fix) / spec.folder
    missing = [n for n in names if _existing(folder / n) is None]
    state = "even after downloading" if download else "and download is off"
    raise DatasetError(f"{source}: missing {', '.join(missing)} in {folder} ({state}); {fix}")


def _fetch(root: Path, spec: Spec) -> None:
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, spec.torchvision_class)
    try:  # train=False: torchvision downloads every file but then loads only the small test split
        dataset_class(str(root), train=False, download=True)
    except Exception as err:  # network, checksum or extraction failures all end the same way
        raise DatasetError(f"downloading {spec.torchvision_class} into {root} failed ({err}); without network, "
                           f"copy the files into {root / spec.folder}") from err


def read_idx_pairs(paths: list[Path], size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of consecutive (images, labels) IDX file pairs, streamed into one block."""
    pairs = list(zip(paths[::2], paths[1::2]))
    counts = [_idx_shape(image_path, 3)[0] for image_path, _ in pairs]
    labels = np.concatenate([_idx_labels(label_path, n) for (_, label_path), n in zip(pairs, counts)])
    return fill(sum(counts), (chunk for path, _ in pairs for chunk in _idx_image_chunks(path)), size, channels), labels


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # type: ignore[return-value]


def _read_exact(handle: BinaryIO, size: int, path: Path, what: str) -> bytes:
    try:
        data = handle.read(size)
    except (OSError, EOFError) as err:  # a damaged .gz stream
        raise DatasetError(f"{path}: unreadable ({err}) while reading {what}") from None
    if len(data) != size:
        raise DatasetError(f"{path}: truncated: {what} needs {size} bytes, the file has {len(data)} left")
    return data


def _idx_header(handle: BinaryIO, path: Path, ndim: int) -> tuple[int, ...]:
    magic = _read_exact(handle, 4, path, "the IDX magic number")
    if magic[:3] != b"\x00\x00\x08" or magic[3] != ndim:
        raise DatasetError(f"{path}: wrong IDX magic number 0x{magic.hex()}, expected 0x0000080{ndim} "
                           f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''}); not an MNIST-style file")
    return struct.unpack(f">{ndim}I", _read_exact(handle, 4 * ndim, path, "the IDX dimensions"))


def _idx_shape(path: Path, ndim: int) -> tuple[int, ...]:
    """Header dimensions, checked against the file size so truncation is caught before any decoding."""
    with _open(path) as handle:
        shape = _idx_header(handle, path, ndim)
    if path.suffix != ".gz":  # a .gz is checked while streaming instead
        expected, actual = 4 * (ndim + 1) + int(np.prod(shape)), path.stat().st_size
        if actual != expected:
            state = "truncated" if actual < expected else "longer than its header says"
            raise DatasetError(f"{path}: {state}: the header promises {list(shape)} ({expected} bytes), "
                               f"the file holds {actual} bytes")
    return shape


def _idx_labels(path: Path, count: int) -> np.ndarray:
    (n,) = _idx_shape(path, 1)
    if n != count:
        raise DatasetError(f"{path}: {n} labels for {count} images in its images file")
    with _open(path) as handle:
        _idx_header(handle, path, 1)
        labels = np.frombuffer(_read_exact(handle, n, path, "the labels"), dtype=np.uint8).astype(np.int64)
    if len(labels) and labels.max() > 9:
        raise DatasetError(f"{path}: label {labels.max()} is outside 0..9")
    return labels


def _idx_image_chunks(path: Path) -> Iterator[np.ndarray]:
    with _open(path) as handle:
        n, h, w = _idx_header(handle, path, 3)
        for start in range(0, n, CHUNK):
            rows = min(CHUNK, n - start)
            data = _read_exact(handle, rows * h * w, path, f"images {start}..{start + rows - 1}")
            yield np.frombuffer(data, dtype=np.uint8).reshape(rows, 1, h, w)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; this refuses every global but numpy's array rebuilders, so a
    corrupt or hostile file cannot run code."""

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        if (module, name) not in PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def read_cifar(paths: list[Path], size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch files one at a time into a block sized from the file sizes (an upper bound on N)."""
    labels: list[np.ndarray] = []

    def batches() -> Iterator[np.ndarray]:
        for path in paths:
            data, batch_labels = _cifar_batch(path)
            labels.append(batch_labels)
            yield data

    images = fill(sum(p.stat().st_size // CIFAR_IMAGE_BYTES for p in paths), batches(), size, channels)
    return images, np.concatenate(labels)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            entry = _NumpyOnlyUnpickler(handle, encoding="latin1").load()
    except Exception as err:  # unpickling garbage can raise nearly anything; all mean a bad file
        raise DatasetError(f"{path}: not a readable CIFAR-10 batch ({type(err).__name__}: {err}); "
                           "re-extract cifar-10-python.tar.gz") from err
    data = entry.get("data") if isinstance(entry, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_IMAGE_BYTES:
        raise DatasetError(f"{path}: expected a dict with 'data' as uint8 N×{CIFAR_IMAGE_BYTES}, got {type(data).__name__}")
    labels = np.asarray(entry.get("labels", []), dtype=np.int64)
    if len(labels) != len(data) or (len(labels) and not 0 <= labels.min() <= labels.max() <= 9):
        raise DatasetError(f"{path}: {len(labels)} labels in 0..9 expected for {len(data)} images")
    return data.reshape(-1, 3, 32, 32), labels
