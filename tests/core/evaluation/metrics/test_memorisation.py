"""Nearest-train distances and the memorisation ratio."""

import pytest
import torch

from gan_assets.core.evaluation.metrics import Evidence, MetricContext, median_nearest_distance, nearest_distances, neighbours
from gan_assets.core.evaluation.metrics.memorisation import nn_ratio


def _evidence(pixels: torch.Tensor | None, n: int) -> Evidence:
    return Evidence(features=torch.zeros(n, 1), probs=torch.ones(n, 1), pixels=pixels)


def _ctx(heldout: float | None) -> MetricContext:
    return MetricContext(class_prior=torch.ones(1), heldout_nn_distance=heldout)


def test_nearest_distances_hand_example():
    reference = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    queries = torch.tensor([[0.0, 0.0], [3.0, 5.0], [6.0, 8.0]])
    expected = torch.tensor([0.0, 1.0, 5.0], dtype=torch.float64)
    torch.testing.assert_close(nearest_distances(queries, reference), expected)
    assert median_nearest_distance(queries, reference) == pytest.approx(1.0)
    assert median_nearest_distance(queries[1:], reference) == pytest.approx(3.0)  # interpolated median


def test_copies_measure_exactly_zero_in_high_dimension():
    train = torch.rand(200, 1024, generator=torch.Generator().manual_seed(0))
    assert nearest_distances(train[50:60], train).abs().max() == 0.0


def test_blocks_agree_with_brute_force(monkeypatch):
    gen = torch.Generator().manual_seed(1)
    queries, reference = torch.rand(50, 16, generator=gen), torch.rand(70, 16, generator=gen)
    brute = torch.cdist(queries.double(), reference.double()).min(dim=1).values
    monkeypatch.setattr(neighbours, "_BLOCK_ELEMENTS", 3 * 70)
    torch.testing.assert_close(nearest_distances(queries, reference), brute)


def test_nn_ratio_flags_memorisation_and_passes_fresh_data():
    gen = torch.Generator().manual_seed(2)
    train, heldout, fresh = (torch.rand(n, 64, generator=gen) for n in (1000, 300, 300))
    ctx = _ctx(median_nearest_distance(heldout, train))
    copies = (train[:300] + 0.001 * torch.randn(300, 64, generator=gen)).clamp(0, 1)
    real = _evidence(train, 1000)
    assert nn_ratio(_evidence(copies, 300), real, ctx)["nn_ratio"] < 0.05
    assert nn_ratio(_evidence(fresh, 300), real, ctx)["nn_ratio"] == pytest.approx(1.0, abs=0.05)


def test_nn_ratio_needs_pixels_and_the_heldout_floor():
    pixels = torch.rand(4, 3)
    with pytest.raises(ValueError, match="pixels"):
        nn_ratio(_evidence(None, 4), _evidence(pixels, 4), _ctx(1.0))
    with pytest.raises(ValueError, match="heldout_nn_distance"):
        nn_ratio(_evidence(pixels, 4), _evidence(pixels, 4), _ctx(None))
    with pytest.raises(ValueError, match="positive"):
        _ctx(0.0)
