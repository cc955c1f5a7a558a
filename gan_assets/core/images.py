"""The image set every stage passes around, and its Parquet codec.

One row per image: `id`, `label`, `split`, `pixels` (fixed-size binary, uint8 C×H×W in row-major
order). The shape, the source and the class names travel in the schema metadata, so a table is
self-describing and decodes bit for bit without any side file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SPLITS = ("train", "held_out")


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64 class index
    split: np.ndarray  # (N,) str, one of SPLITS
    ids: np.ndarray  # (N,) int64, stable across re-ingestion
    source: str
    class_names: tuple[str, ...]
    extra: dict[str, str] = field(default_factory=dict)  # more schema metadata (licence, …)

    def __post_init__(self) -> None:
        n = len(self.images)
        assert self.images.dtype == np.uint8 and self.images.ndim == 4, self.images.shape
        assert len(self.labels) == len(self.split) == len(self.ids) == n

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, split: str) -> ImageSet:
        keep = self.split == split
        return ImageSet(self.images[keep], self.labels[keep], self.split[keep], self.ids[keep],
                        self.source, self.class_names, self.extra)

    def content_hash(self) -> str:
        """sha256 of everything a downstream stage can see: re-ingesting identical data gives the same hash."""
        digest = hashlib.sha256()
        digest.update(json.dumps([self.shape, self.source, list(self.class_names)]).encode())
        for array in (self.ids.astype("<i8"), self.labels.astype("<i8"), self.images):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update("\n".join(self.split.tolist()).encode())
        return digest.hexdigest()


def to_table(data: ImageSet) -> pa.Table:
    c, h, w = data.shape
    pixels = _pixels_array(data.images, c * h * w)
    schema_meta = {
        "shape": json.dumps([c, h, w]),
        "source": data.source,
        "class_names": json.dumps(list(data.class_names)),
        **data.extra,
    }
    table = pa.table({
        "id": pa.array(data.ids, type=pa.int64()),
        "label": pa.array(data.labels, type=pa.int16()),
        "split": pa.array(data.split.tolist(), type=pa.string()).dictionary_encode(),
        "pixels": pixels,
    })
    return table.replace_schema_metadata(schema_meta)


def _pixels_array(images: np.ndarray, width: int) -> pa.FixedSizeBinaryArray:
    # Zero-copy view of the contiguous uint8 block as fixed-size binary values.
    flat = np.ascontiguousarray(images).reshape(-1)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(images), [None, pa.py_buffer(flat)])


def from_table(table: pa.Table) -> ImageSet:
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    shape = json.loads(meta.pop("shape"))
    source = meta.pop("source")
    class_names = tuple(json.loads(meta.pop("class_names")))
    pixels = table.column("pixels").combine_chunks()
    buffer = pixels.buffers()[1]
    flat = np.frombuffer(buffer, dtype=np.uint8, count=len(pixels) * int(np.prod(shape)),
                         offset=pixels.offset * int(np.prod(shape)))
    return ImageSet(
        images=flat.reshape(len(pixels), *shape).copy(),
        labels=table.column("label").to_numpy().astype(np.int64),
        split=np.asarray(table.column("split").cast(pa.string()).to_pylist(), dtype=object).astype(str),
        ids=table.column("id").to_numpy().astype(np.int64),
        source=source,
        class_names=class_names,
        extra=meta,
    )


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write next to the target, fsync, then rename: a failure never leaves a partial file, and the
    previous file stays readable until the new one is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rows_by_id(data: ImageSet, ids: np.ndarray) -> np.ndarray:
    """Positions of `ids` in `data`; a missing id is an error, not a silent wrong image."""
    order = np.argsort(data.ids)
    found = np.searchsorted(data.ids, ids, sorter=order)
    found = order[np.clip(found, 0, len(order) - 1)]
    missing = ids[data.ids[found] != ids]
    if len(missing):
        raise KeyError(f"ids not in the dataset: {missing[:10].tolist()}")
    return found
