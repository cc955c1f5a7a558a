"""ring8 / grid25: PacGAN's mixtures, their modes for the metrics, and the points codec."""

import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from gan_assets.core.config import DatasetConfig, dataset_train_size
from gan_assets.core.data.images import PointSet, decode_table, from_table, points_from_table, to_table
from gan_assets.core.data.sources import load_dataset, mixture_modes, modes_of
from gan_assets.core.evaluation.metrics import ring_centers
from gan_assets.core.storage import write_parquet_atomic


def mixture(source: str, n: int = 4000, seed: int = 0, **overrides) -> PointSet:
    data = load_dataset(DatasetConfig(source=source, num_samples=n, **overrides), seed=seed)
    assert isinstance(data, PointSet)
    return data


def test_ring8_modes_sit_at_two_pi_k_over_8_with_std_001():
    data = mixture("ring8")
    angles = 2 * math.pi * np.arange(8) / 8  # not linspace(0, 2π, 8): that repeats the first mode
    expected = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for k in range(8):
        members = data.points[data.labels == k].astype(np.float64)
        np.testing.assert_allclose(members.mean(axis=0), expected[k], atol=0.003)
        assert members.std(axis=0) == pytest.approx([0.01, 0.01], rel=0.1)
    assert np.bincount(data.labels).tolist() == [500] * 8  # balanced


def test_grid25_means_and_std():
    data = mixture("grid25", n=5000)
    means = np.array([data.points[data.labels == k].mean(axis=0) for k in range(25)])
    np.testing.assert_allclose(np.sort(np.unique(means.round(1))), [-4, -2, 0, 2, 4])
    assert data.points[data.labels == 0].std(axis=0) == pytest.approx([0.05, 0.05], rel=0.15)


def test_modes_are_exported_for_the_metrics():
    data = mixture("ring8", n=64)
    centers, std = modes_of(data)
    torch.testing.assert_close(centers, ring_centers(8, radius=1.0))
    assert std == 0.01 and mixture_modes("grid25")[1] == 0.05


def test_seed_draws_the_points_but_not_the_split():
    a, b = mixture("ring8", seed=1), mixture("ring8", seed=2)
    assert a.content_hash() == mixture("ring8", seed=1).content_hash() != b.content_hash()
    np.testing.assert_array_equal(a.split[np.argsort(a.labels, kind="stable")], b.split[np.argsort(b.labels, kind="stable")])


@pytest.mark.parametrize("source, n, fraction", [("ring8", 1001, 0.2), ("grid25", 333, 0.3), ("ring8", 20, 0.5)])
def test_config_knows_the_train_size_before_sampling(source, n, fraction):
    data = mixture(source, n=n, held_out_fraction=fraction)
    assert (data.split == "train").sum() == dataset_train_size(data_config := DatasetConfig(
        source=source, num_samples=n, held_out_fraction=fraction))
    assert data_config.image_size == 32  # images settings are ignored for points


def test_points_codec_is_bit_exact_and_kept_apart_from_images(tmp_path):
    data = mixture("grid25", n=500)
    write_parquet_atomic(to_table(data), tmp_path / "p.parquet")
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.column_names == ["id", "label", "split", "x", "y"]
    back = points_from_table(table)
    assert back.points.tobytes() == data.points.tobytes() and back.content_hash() == data.content_hash()
    assert isinstance(decode_table(table), PointSet)
    with pytest.raises(TypeError, match="2-D points of 'grid25'"):
        from_table(table)
