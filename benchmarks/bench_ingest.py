"""Time and peak memory of ingesting a generated MNIST-sized IDX file, as the `dataset` asset does it.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ingest.py [--n 60000] [--image-size 28]
Prints one JSON line. Goals (issue 5): `seconds` < 10 for 60,000 28×28 images, and the peak memory
below twice the uint8 size of the dataset (`dataset_bytes`). Two peak figures:
- `rss_peak_over_baseline`: resident memory high-water mark during ingestion minus the resident size
  just before (Linux: the mark is reset through /proc/self/clear_refs). Counts every allocator
  (numpy, torch, Arrow's pool, the Parquet writer), so it is the honest one.
- `traced_peak`: tracemalloc's peak over read + split + hash + table (numpy and Python only), in a
  second, separate pass because tracing slows Python allocation.
The file is written in chunks so that generating it never holds the dataset in memory.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.images import to_table
from gan_assets.core.data.sources import load_dataset
from gan_assets.core.storage import write_parquet_atomic


def write_idx_files(folder: Path, n: int, seed: int = 0) -> None:
    """MNIST-like files: a bright blob on black per image (compresses like MNIST does), labels 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with open(folder / "train-images-idx3-ubyte", "wb") as handle:
        handle.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", n, 28, 28))
        for start in range(0, n, 4096):
            rows = min(4096, n - start)
            chunk = np.zeros((rows, 28, 28), dtype=np.uint8)
            chunk[:, 6:22, 9:19] = rng.integers(0, 256, (rows, 16, 10), dtype=np.uint8)
            handle.write(chunk.tobytes())
    labels = (np.arange(n) % 10).astype(np.uint8)
    (folder / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", n) + labels.tobytes())


def ingest(config: DatasetConfig, out: Path | None) -> tuple[int, str]:
    """What the asset and its IO manager do: load, hash, table, atomic Parquet write."""
    data = load_dataset(config)
    content_hash = data.content_hash()
    table = to_table(data)
    if out is not None:
        write_parquet_atomic(table, out)
    return data.images.nbytes, content_hash


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--image-size", type=int, default=28)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_idx_files(root / "MNIST" / "raw", args.n)
        config = DatasetConfig(source="mnist", root=str(root), splits=["train"], image_size=args.image_size)
        write_idx_files(root / "warm" / "MNIST" / "raw", 100)  # load lazy imports before measuring
        ingest(config.model_copy(update={"root": str(root / "warm")}), root / "warm.parquet")
        Path("/proc/self/clear_refs").write_text("5")  # reset the resident high-water mark
        baseline = rss_kib("VmRSS")
        start = time.perf_counter()
        nbytes, content_hash = ingest(config, root / "dataset.parquet")
        seconds = time.perf_counter() - start
        rss_peak = (rss_kib("VmHWM") - baseline) * 1024
        tracemalloc.start()
        assert ingest(config, None)[1] == content_hash  # same files, same version
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        parquet_bytes = (root / "dataset.parquet").stat().st_size
    print(json.dumps({"n": args.n, "image_size": args.image_size, "seconds": round(seconds, 3),
                      "dataset_bytes": nbytes, "rss_peak_over_baseline": rss_peak, "traced_peak": traced_peak,
                      "rss_peak_ratio": round(rss_peak / nbytes, 3), "traced_peak_ratio": round(traced_peak / nbytes, 3),
                      "parquet_bytes": parquet_bytes, "sha256": content_hash}))


if __name__ == "__main__":
    main()
