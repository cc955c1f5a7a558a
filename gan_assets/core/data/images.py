"""The image set every stage passes around, and its Parquet codec.

One row per image: `id`, `label`, `split`, `pixels` (fixed-size binary, uint8 C×H×W in row-major
order). The shape, the source and the class names travel in the schema metadata, so a table is
self-describing and decodes bit for bit without any side file.

2-D sources (ring8, grid25) are a `PointSet`: the same row fields with float32 `x`, `y` columns
instead of `pixels`, and `kind: points` in the schema metadata. A separate type rather than an
ImageSet with N×2 "images", so image code (networks, galleries, the evaluator) never receives points
by accident: `from_table` refuses a points table, `decode_table` returns whichever the table holds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

SPLITS = ("train", "held_out")


class Examples:
    """One dataset's examples with labels and split: images (`ImageSet`) or 2-D points (`PointSet`). The type an
    asset asks for when it reads the `dataset` asset; the IO manager decodes the stored table into it."""


@dataclass(frozen=True)
class ImageSet(Examples):
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

    @property
    def examples(self) -> np.ndarray:
        """What the networks train on, under the name both kinds share."""
        return self.images

    def subset(self, split: str) -> ImageSet:
        return _rows_of_split(self, "images", split)

    def content_hash(self) -> str:
        """sha256 of everything a downstream stage can see: re-ingesting identical data gives the same hash."""
        digest = hashlib.sha256()
        digest.update(json.dumps([self.shape, self.source, list(self.class_names)]).encode())
        _hash_rows(digest, self.ids, self.labels, self.images, self.split)
        return digest.hexdigest()


def _rows_of_split(data, examples: str, split: str):
    """The same set restricted to one split: every per-row field filtered alike."""
    keep = data.split == split
    return replace(data, **{name: getattr(data, name)[keep] for name in (examples, "labels", "split", "ids")})


@dataclass(frozen=True)
class PointSet(Examples):
    """2-D examples with mode labels; `extra` carries what metrics need (mode_centers, mode_std as JSON)."""

    points: np.ndarray  # (N, 2) float32 coordinates
    labels: np.ndarray  # (N,) int64 mode index
    split: np.ndarray  # (N,) str, one of SPLITS
    ids: np.ndarray  # (N,) int64
    source: str
    class_names: tuple[str, ...]
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.points.dtype == np.float32 and self.points.ndim == 2 and self.points.shape[1] == 2
        assert len(self.labels) == len(self.split) == len(self.ids) == len(self.points)

    @property
    def shape(self) -> tuple[int]:
        return (2,)

    @property
    def examples(self) -> np.ndarray:
        return self.points

    def subset(self, split: str) -> PointSet:
        return _rows_of_split(self, "points", split)

    def content_hash(self) -> str:
        """As ImageSet's, over the float32 coordinates; the `points` tag keeps the two kinds apart."""
        digest = hashlib.sha256()
        digest.update(json.dumps(["points", self.source, list(self.class_names)]).encode())
        _hash_rows(digest, self.ids, self.labels, self.points.astype("<f4"), self.split)
        return digest.hexdigest()


def _hash_rows(digest, ids: np.ndarray, labels: np.ndarray, values: np.ndarray, split: np.ndarray) -> None:
    # The array itself goes to sha256 (buffer protocol): no bytes copy of a dataset-sized block.
    for array in (ids.astype("<i8"), labels.astype("<i8"), values):
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    digest.update("\n".join(split.tolist()).encode())


def to_table(data: ImageSet | PointSet) -> pa.Table:
    if isinstance(data, PointSet):
        values = {"x": pa.array(data.points[:, 0]), "y": pa.array(data.points[:, 1])}
        kind = {"kind": "points"}
    else:
        c, h, w = data.shape
        values = {"pixels": _pixels_array(data.images, c * h * w)}
        kind = {"shape": json.dumps([c, h, w])}
    schema_meta = {**kind, "source": data.source, "class_names": json.dumps(list(data.class_names)), **data.extra}
    table = pa.table({
        "id": pa.array(data.ids, type=pa.int64()),
        "label": pa.array(data.labels, type=pa.int16()),
        "split": pa.array(data.split.tolist(), type=pa.string()).dictionary_encode(),
        **values,
    })
    return table.replace_schema_metadata(schema_meta)


def _pixels_array(images: np.ndarray, width: int) -> pa.FixedSizeBinaryArray:
    # Zero-copy view of the contiguous uint8 block as fixed-size binary values.
    flat = np.ascontiguousarray(images).reshape(-1)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(images), [None, pa.py_buffer(flat)])


def from_table(table: pa.Table) -> ImageSet:
    meta = _schema_meta(table)
    if meta.get("kind") == "points":
        raise TypeError(f"this table holds 2-D points of {meta.get('source')!r}, not images: use decode_table "
                        "or points_from_table")
    shape = json.loads(meta.pop("shape"))
    source = meta.pop("source")
    class_names = tuple(json.loads(meta.pop("class_names")))
    return ImageSet(_decode_pixels(table.column("pixels"), tuple(shape)), *_row_fields(table), source=source,
                    class_names=class_names, extra=meta)


def points_from_table(table: pa.Table) -> PointSet:
    meta = _schema_meta(table)
    if meta.pop("kind", None) != "points":
        raise TypeError("this table holds images, not 2-D points: use decode_table or from_table")
    source = meta.pop("source")
    class_names = tuple(json.loads(meta.pop("class_names")))
    points = np.stack([table.column(c).to_numpy() for c in ("x", "y")], axis=1).astype(np.float32)
    return PointSet(points, *_row_fields(table), source=source, class_names=class_names, extra=meta)


def decode_table(table: pa.Table) -> ImageSet | PointSet:
    """Whichever kind the table holds (stages that accept both, e.g. the dataset's own checks)."""
    return points_from_table(table) if _schema_meta(table).get("kind") == "points" else from_table(table)


def _schema_meta(table: pa.Table) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}


def _row_fields(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """labels, split, ids: the columns both kinds share."""
    split = np.asarray(table.column("split").cast(pa.string()).to_pylist(), dtype=object).astype(str)
    return (table.column("label").to_numpy().astype(np.int64), split,
            table.column("id").to_numpy().astype(np.int64))


def _decode_pixels(pixels: pa.ChunkedArray, shape: tuple[int, ...]) -> np.ndarray:
    """Copy chunk by chunk into one block: the table plus the images, never a third combined copy."""
    width = int(np.prod(shape))
    images = np.empty((len(pixels), *shape), dtype=np.uint8)
    flat, row = images.reshape(len(pixels), width), 0
    for chunk in pixels.chunks:
        n = len(chunk)
        if n == 0:
            continue
        values = np.frombuffer(chunk.buffers()[1], dtype=np.uint8, count=n * width, offset=chunk.offset * width)
        flat[row:row + n] = values.reshape(n, width)
        row += n
    return images


def rows_by_id(data: ImageSet | PointSet, ids: np.ndarray) -> np.ndarray:
    """Positions of `ids` in `data`; a missing id is an error, not a silent wrong image."""
    order = np.argsort(data.ids)
    found = np.searchsorted(data.ids, ids, sorter=order)
    found = order[np.clip(found, 0, len(order) - 1)]
    missing = ids[data.ids[found] != ids]
    if len(missing):
        raise KeyError(f"ids not in the dataset: {missing[:10].tolist()}")
    return found
