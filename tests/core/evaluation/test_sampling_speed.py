"""Sampling speed and sharpness, measured alike for every family."""

import pytest
import torch
from torch import nn

from gan_assets.core.evaluation.sampling_speed import laplacian_variance, measure_sampling


class Constant(nn.Module):
    z_dim, conditional, num_classes = 3, False, 0

    def forward(self, z, y=None):
        return torch.zeros(len(z), 1, 8, 8)


def checkerboard(n: int) -> torch.Tensor:
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    return (((rows + cols) % 2) * 2 - 1).float().expand(n, 1, 8, 8)


def test_laplacian_variance_of_a_checkerboard_and_a_flat_image():
    # every interior Laplacian of a ±1 checkerboard is ∓8: 36 values, unbiased variance 64·36/35
    assert laplacian_variance(checkerboard(2)) == pytest.approx(64 * 36 / 35)
    assert laplacian_variance(torch.zeros(2, 1, 8, 8)) == 0.0
    blurred = torch.nn.functional.avg_pool2d(checkerboard(2), 3, 1, 1, count_include_pad=False)
    assert laplacian_variance(blurred) < 0.2 * laplacian_variance(checkerboard(2))


def test_every_sample_is_timed_within_the_budget():
    figures = measure_sampling(Constant(), checkerboard(4), seed=0, total=1_000, batch=300, budget_seconds=60)
    assert figures.samples_timed == 1_000 and not figures.sampling_extrapolated
    assert figures.seconds_for_10000_samples == pytest.approx(1_000 / figures.samples_per_second)
    assert figures.sharpness == 0.0  # flat samples against a sharp reference


def test_a_slow_sampler_is_timed_on_what_fits_and_extrapolated():
    figures = measure_sampling(Constant(), checkerboard(4), seed=0, total=1_000, batch=300, budget_seconds=0)
    assert figures.samples_timed == 300 and figures.sampling_extrapolated
    assert figures.seconds_for_10000_samples == pytest.approx(1_000 * figures.sampling_seconds / 300)
