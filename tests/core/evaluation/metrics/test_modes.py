"""The VEEGAN/PacGAN mode protocol on 2-D rings and grids."""

import math

import pytest
import torch

from gan_assets.core.evaluation.metrics import Evidence, MetricContext, grid_centers, ring_centers
from gan_assets.core.evaluation.metrics.modes import modes

STD = 0.02


def _evidence(points: torch.Tensor) -> Evidence:
    n = points.shape[0]
    return Evidence(features=torch.zeros(n, 1), probs=torch.ones(n, 1), points=points)


def _ctx(centers: torch.Tensor, std: float = STD) -> MetricContext:
    return MetricContext(class_prior=torch.ones(1), mode_centers=centers, mode_std=std)


def _around(centers: torch.Tensor, n_per: int, std: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_per * centers.shape[0], 2, generator=gen, dtype=centers.dtype)
    return centers.repeat_interleave(n_per, dim=0) + std * noise


def _distinct(points: torch.Tensor, atol: float = 1e-6) -> int:
    d = torch.cdist(points, points)
    return int(sum(1 for i in range(len(points)) if not (d[i, :i] <= atol).any()))


def test_ring_centers_use_angles_two_pi_k_over_m():
    centers = ring_centers(8, radius=2.0)
    angles = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    torch.testing.assert_close(centers, 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1))
    assert _distinct(centers) == 8


def test_linspace_ring_pitfall_has_seven_distinct_modes():
    angles = torch.linspace(0, 2 * math.pi, 8, dtype=torch.float64)  # 0 and 2π are the same point
    bad = torch.stack([angles.cos(), angles.sin()], dim=1)
    assert _distinct(bad) == 7
    with pytest.raises(ValueError, match="coincide"):
        modes(_evidence(bad), _evidence(bad), _ctx(bad))


def test_sampler_hitting_three_of_eight_modes():
    centers = ring_centers(8, radius=2.0)
    pts = _around(centers[[0, 3, 5]], 100, STD / 10)  # all well within 3 std, equal counts
    out = modes(_evidence(pts), _evidence(pts), _ctx(centers))
    assert out["modes"] == 3.0
    assert out["hq_fraction"] == 1.0
    assert out["reverse_kl"] == pytest.approx(math.log(8 / 3), rel=1e-12)  # 3 x (1/3) log((1/3)/(1/8))


def test_low_quality_samples_count_in_hq_fraction_only():
    centers = ring_centers(8, radius=2.0)
    on_mode = _around(centers[:2], 50, STD / 10)
    off_mode = torch.zeros(25, 2, dtype=torch.float64)  # ring centre: 2 away from every mode
    between = (centers[0] + centers[1]).unsqueeze(0).repeat(5, 1) / 2  # nearest to a mode, but far
    out = modes(_evidence(torch.cat([on_mode, off_mode, between])), _evidence(on_mode), _ctx(centers))
    assert out == {"modes": 2.0, "hq_fraction": pytest.approx(100 / 130), "reverse_kl": pytest.approx(math.log(4))}


def test_real_mixture_scores_the_three_std_floor():
    centers = grid_centers(5, spacing=2.0)
    pts = _around(centers, 2000, 0.05, seed=1)
    out = modes(_evidence(pts), _evidence(pts), _ctx(centers, 0.05))
    assert out["modes"] == 25.0
    assert out["hq_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=3e-3)  # P(|N(0, I₂)| < 3)
    assert out["reverse_kl"] == pytest.approx(0.0, abs=1e-3)


def test_no_high_quality_sample_reports_total_collapse():
    centers = ring_centers(8, radius=2.0)
    far = torch.full((10, 2), 50.0, dtype=torch.float64)
    assert modes(_evidence(far), _evidence(far), _ctx(centers)) == {
        "modes": 0.0, "hq_fraction": 0.0, "reverse_kl": pytest.approx(math.log(8)),
    }


def test_grid_centers_span_minus_four_to_four():
    centers = grid_centers(5, spacing=2.0)
    assert centers.shape == (25, 2) and _distinct(centers) == 25
    assert centers.min() == -4.0 and centers.max() == 4.0


def test_modes_needs_points_and_centers():
    centers = ring_centers(8)
    no_points = Evidence(features=torch.zeros(3, 1), probs=torch.ones(3, 1))
    with pytest.raises(ValueError, match="points"):
        modes(no_points, no_points, _ctx(centers))
    pts = _evidence(centers)
    with pytest.raises(ValueError, match="mode_centers"):
        modes(pts, pts, MetricContext(class_prior=torch.ones(1)))
