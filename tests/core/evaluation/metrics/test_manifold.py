"""Improved precision/recall and the k-NN radii under it."""

import math

import pytest
import torch

from gan_assets.core.evaluation.metrics import Evidence, MetricContext, neighbours
from gan_assets.core.evaluation.metrics.manifold import manifold_precision_recall, precision_recall
from gan_assets.core.evaluation.metrics.neighbours import kth_neighbour_radii


def _evidence(features: torch.Tensor) -> Evidence:
    return Evidence(features=features, probs=torch.full((features.shape[0], 2), 0.5))


def _ctx(k: int = 3) -> MetricContext:
    return MetricContext(class_prior=torch.tensor([0.5, 0.5]), pr_k=k)


def _clusters(n_per: int, centers: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(n_per * centers.shape[0], centers.shape[1], generator=gen)
    return centers.repeat_interleave(n_per, dim=0) + noise


def test_radii_exclude_the_point_itself():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    torch.testing.assert_close(kth_neighbour_radii(points, 1), torch.tensor([1.0, 1.0, 4.0, 16.0]))
    torch.testing.assert_close(kth_neighbour_radii(points, 2), torch.tensor([9.0, 4.0, 9.0, 36.0]))
    with pytest.raises(ValueError, match="k\\+1"):
        kth_neighbour_radii(points, 4)


def test_hand_example():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])  # k=1 radius 1 everywhere
    samples = torch.tensor([[0.5], [10.0]])  # inside, far outside; each other's radius is 9.5
    assert manifold_precision_recall(samples, real, k=1) == (0.5, 1.0)


def test_identical_sets_score_one_one():
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    assert precision_recall(_evidence(x), _evidence(x.clone()), _ctx()) == {"precision": 1.0, "recall": 1.0}


def test_single_mode_generator_keeps_precision_loses_recall():
    # 2-D so that k=3 balls tile a mode well: in 10+ dims even a perfect generator of one
    # mode scores precision ~0.85 at these sizes, a property of the metric, not a bug
    gen = torch.Generator().manual_seed(1)
    angles = 2 * math.pi * torch.arange(10) / 10
    centers = 20.0 * torch.stack([angles.cos(), angles.sin()], dim=1)  # ten modes, 12 std apart
    real = _clusters(200, centers, gen)
    samples = _clusters(500, centers[:1], gen)  # collapsed onto the first mode
    out = precision_recall(_evidence(samples), _evidence(real), _ctx())
    assert out["recall"] < 0.2
    assert out["precision"] > 0.9


def test_block_size_does_not_change_the_result(monkeypatch):
    gen = torch.Generator().manual_seed(2)
    real, samples = torch.randn(300, 4, generator=gen), torch.randn(200, 4, generator=gen) * 1.5
    whole = manifold_precision_recall(samples, real, k=3)
    monkeypatch.setattr(neighbours, "_BLOCK_ELEMENTS", 7 * 300)  # 7-row blocks, a ragged last one
    assert manifold_precision_recall(samples, real, k=3) == whole
    assert 0.0 < whole[0] < 1.0 and 0.0 < whole[1] < 1.0
