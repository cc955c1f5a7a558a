"""Mode metrics for 2-D Gaussian mixtures (ring, grid): the VEEGAN/PacGAN protocol.

Protocol (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018; the histogram is the
one the PacGAN authors' released MetricLogger builds):
1. each sample is assigned to its nearest mode center (Euclidean; the modes are isotropic,
   so this equals the authors' std-normalised distance);
2. it is *high quality* when that distance is < 3 * mode_std;
3. `modes` = number of modes with at least one high-quality sample assigned
   (a mode is lost when no sample lands within 3 std of its center);
4. `hq_fraction` = high-quality samples / all samples. Note: even real data scores only
   1 - exp(-4.5) ≈ 0.989 here, the share of a 2-D isotropic Gaussian within 3 std;
5. `reverse_kl` = KL(p || u), p the histogram of high-quality samples over modes,
   u uniform over the M modes (the true mixture weights). u > 0 everywhere and 0·log 0 = 0,
   so no epsilon is needed: KL = log M - H(p), between 0 and log M. With no high-quality
   sample at all p is undefined; we report log M, the value of total collapse.
`real` is unused: the true distribution is given by ctx.mode_centers / ctx.mode_std.
"""

from __future__ import annotations

import math

import torch

from .base import Evidence, MetricContext

HQ_STDS = 3.0  # high quality = within 3 standard deviations of the nearest mode center


def check_distinct_centers(centers: torch.Tensor, atol: float = 1e-6) -> None:
    """Raise when two centers coincide: a duplicated mode can never be told apart (or covered)."""
    d = torch.cdist(centers.double(), centers.double())
    d.fill_diagonal_(float("inf"))
    if (d <= atol).any():
        i, j = (int(v) for v in (d <= atol).nonzero()[0])
        raise ValueError(
            f"mode centers {i} and {j} coincide ({centers[i].tolist()}); "
            "a ring built with linspace(0, 2π, M) repeats its first point, use ring_centers()"
        )


def nearest_mode(points: torch.Tensor, centers: torch.Tensor, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of each point's nearest centre, whether it is high quality: within HQ_STDS std of it)."""
    dist, nearest = torch.cdist(points.double(), centers.double()).min(dim=1)
    return nearest, dist < HQ_STDS * std


def mode_histogram(points: torch.Tensor, centers: torch.Tensor, std: float) -> tuple[torch.Tensor, int]:
    """(counts of high-quality samples per mode (M,), number of samples)."""
    nearest, high_quality = nearest_mode(points, centers, std)
    return torch.bincount(nearest[high_quality], minlength=centers.shape[0]), points.shape[0]


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(counts / sum || uniform) = log M - H(p); log M when counts are all zero (see module doc)."""
    m = counts.numel()
    total = counts.sum()
    if total == 0:
        return math.log(m)
    p = counts.double() / total
    return float(torch.xlogy(p, p * m).sum())


def modes(samples: Evidence, real: Evidence, ctx: MetricContext) -> dict[str, float]:
    """modes (higher is better, max M), hq_fraction (higher), reverse_kl (lower)."""
    if samples.points is None:
        raise ValueError("the modes metric needs samples.points (n, 2)")
    if ctx.mode_centers is None or ctx.mode_std is None:
        raise ValueError("the modes metric needs ctx.mode_centers and ctx.mode_std")
    check_distinct_centers(ctx.mode_centers)
    counts, n = mode_histogram(samples.points, ctx.mode_centers, ctx.mode_std)
    return {
        "modes": float((counts > 0).sum()),
        "hq_fraction": float(counts.sum()) / n,
        "reverse_kl": kl_to_uniform(counts),
    }
