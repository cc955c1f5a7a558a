"""Distribution distances in evaluator feature space: Fréchet distance and KID.

Both are the usual FID / KID recipes with the evaluator's penultimate features standing
in for Inception's pool3 (no download); the numbers are therefore comparable only
between runs sharing one evaluator. With `evaluation.inception` the same functions also run on
the FID Inception network's pool3 features (the `*_inception` columns, inception.py).
"""

from __future__ import annotations

import torch

from .base import Evidence, MetricContext


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased (n-1) covariance, in float64 so tr Σ1 + tr Σ2 - 2 tr(..) cancels cleanly."""
    n = features.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {n}")
    x = features.double()
    mu = x.mean(0)
    centred = x - mu
    return mu, centred.T @ centred / (n - 1)


def _trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """tr sqrt(Σ1 Σ2) via symmetric eigendecompositions only.

    Σ1 Σ2 = S S Σ2 has the eigenvalues of S Σ2 S (S = sqrt Σ1), which is symmetric PSD, so
    its eigenvalues come from eigh; rounding negatives are clamped to 0. Unlike
    scipy.linalg.sqrtm this never stalls on multithreaded BLAS and never goes complex.
    """
    evals, evecs = torch.linalg.eigh(sigma1)
    root = (evecs * evals.clamp(min=0).sqrt()) @ evecs.T
    inner = root @ sigma2 @ root
    inner = (inner + inner.T) / 2  # symmetric up to rounding; make it exact for eigvalsh
    return torch.linalg.eigvalsh(inner).clamp(min=0).sqrt().sum()


def frechet_distance_from_stats(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """|μ1-μ2|² + tr Σ1 + tr Σ2 - 2 tr sqrt(Σ1 Σ2): the 2-Wasserstein distance² of two Gaussians.

    Clamped at 0: the exact value is non-negative, only rounding can make it dip below.
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.numel(),) * 2:
        raise ValueError("mu1, mu2 must be (d,) and sigma1, sigma2 (d, d)")
    diff = mu1 - mu2
    value = diff @ diff + sigma1.trace() + sigma2.trace() - 2 * _trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)


def fd(samples: Evidence, real: Evidence, ctx: MetricContext) -> dict[str, float]:
    """Fréchet distance between Gaussians fitted to the two feature sets (lower is better)."""
    return {"fd": frechet_distance_from_stats(*gaussian_stats(samples.features), *gaussian_stats(real.features))}


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """k(x, y) = (x·y / d + 1)³, KID's kernel (Bińkowski et al. 2018), returned in float64.

    The dot products run in the inputs' dtype (the matmul is KID's whole cost); the cube
    and the sums that follow are float64, where the cancellation in MMD² happens.
    """
    kernel = (x @ y.T).double()
    return kernel.div_(x.shape[1]).add_(1.0).pow_(3)  # in place: no extra m x m temporaries


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² of two equal-size sets, as in Bińkowski et al. / torch-fidelity.

    Within-set sums drop the diagonal (k(x_i, x_i)) and divide by m(m-1); the cross term
    keeps all m² pairs.
    """
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"need two sets of equal size >= 2, got {m} and {y.shape[0]}")
    k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    within = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
    return float(within / (m * (m - 1)) - 2 * polynomial_kernel(x, y).sum() / (m * m))


def kid_subset_indices(
    n_samples: int, n_real: int, ctx: MetricContext
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (sample, real) index pairs KID averages over: subsets without replacement.

    Size min(kid_subset_size, n_samples, n_real); drawn from one torch.Generator seeded by
    ctx.seed, so a fixed seed gives fixed subsets and a fixed KID.
    """
    size = min(ctx.kid_subset_size, n_samples, n_real)
    gen = torch.Generator().manual_seed(ctx.seed)
    return [
        (torch.randperm(n_samples, generator=gen)[:size], torch.randperm(n_real, generator=gen)[:size])
        for _ in range(ctx.kid_subsets)
    ]


def kid(samples: Evidence, real: Evidence, ctx: MetricContext) -> dict[str, float]:
    """Kernel Inception Distance in evaluator features: mean and std (ddof=0) over subsets.

    Dot products in float32 (the bulk of the cost; their rounding moves MMD² far less than kid_std), kernel sums in
    float64 (where cancellation would lose digits).
    """
    x, y = samples.features.float(), real.features.float()
    subsets = kid_subset_indices(x.shape[0], y.shape[0], ctx)
    values = torch.tensor([mmd2_unbiased(x[i], y[j]) for i, j in subsets], dtype=torch.float64)
    return {"kid": float(values.mean()), "kid_std": float(values.std(correction=0))}
