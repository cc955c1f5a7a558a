"""The Parquet codec round-trips bit for bit; the content hash is stable; writes are atomic."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.images import ImageSet, from_table, rows_by_id, to_table
from gan_assets.core.data.sources import load_dataset, stratified_split
from gan_assets.core.storage import write_parquet_atomic


def random_set(n=50, shape=(3, 8, 8), seed=0) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 4, n),
                    np.where(rng.random(n) < 0.2, "held_out", "train"), np.arange(n) * 3, "random",
                    ("a", "b", "c", "d"), {"licence": "none"})


def test_codec_round_trips_bit_for_bit(tmp_path: Path):
    data = random_set()
    write_parquet_atomic(to_table(data), tmp_path / "d.parquet")
    back = from_table(pq.read_table(tmp_path / "d.parquet"))
    np.testing.assert_array_equal(back.images, data.images)
    np.testing.assert_array_equal(back.labels, data.labels)
    np.testing.assert_array_equal(back.split, data.split)
    np.testing.assert_array_equal(back.ids, data.ids)
    assert (back.shape, back.source, back.class_names, back.extra) == ((3, 8, 8), "random", data.class_names,
                                                                        {"licence": "none"})
    assert back.content_hash() == data.content_hash()


def test_schema_carries_shape_and_fixed_size_pixels():
    table = to_table(random_set())
    assert table.schema.metadata[b"shape"] == b"[3, 8, 8]"
    assert table.schema.field("pixels").type.byte_width == 3 * 8 * 8


def test_content_hash_sees_every_pixel():
    data = random_set()
    images = data.images.copy()
    images[7, 1, 2, 3] ^= 1
    changed = ImageSet(images, data.labels, data.split, data.ids, data.source, data.class_names)
    assert changed.content_hash() != data.content_hash()


def test_failed_write_keeps_the_previous_file(tmp_path: Path):
    path = tmp_path / "d.parquet"
    write_parquet_atomic(to_table(random_set(seed=1)), path)
    with pytest.raises(AttributeError):
        write_parquet_atomic("not a table", path)  # type: ignore[arg-type]
    assert from_table(pq.read_table(path)).content_hash() == random_set(seed=1).content_hash()
    assert [p.name for p in tmp_path.iterdir()] == ["d.parquet"]  # no temp file left behind


def test_digits_ingestion():
    data = load_dataset(DatasetConfig())
    assert data.images.shape == (1797, 1, 32, 32) and data.images.dtype == np.uint8
    assert data.images.max() == 255 and data.images.min() == 0
    assert (data.split == "held_out").sum() == 359
    # stratified: every class keeps its share within one image of rounding
    for label in range(10):
        members = data.labels == label
        assert (data.split[members] == "held_out").sum() == round(0.2 * members.sum())
    assert load_dataset(DatasetConfig()).content_hash() == data.content_hash()


def test_digits_keep_their_17_grey_levels_at_native_size():
    data = load_dataset(DatasetConfig(image_size=8))
    assert len(np.unique(data.images)) == 17


def test_split_is_deterministic_and_seeded():
    labels = np.repeat(np.arange(3), 10)
    np.testing.assert_array_equal(stratified_split(labels, 0.3, 1), stratified_split(labels, 0.3, 1))
    assert (stratified_split(labels, 0.3, 1) != stratified_split(labels, 0.3, 2)).any()


def test_rows_by_id_refuses_missing_ids():
    data = random_set()
    np.testing.assert_array_equal(rows_by_id(data, np.array([9, 0, 3])), [3, 0, 1])
    with pytest.raises(KeyError, match="4"):
        rows_by_id(data, np.array([4]))
