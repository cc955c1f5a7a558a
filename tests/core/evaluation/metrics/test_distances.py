"""Fréchet distance and KID against independent references and closed forms."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # scipy's sqrtm can stall on multithreaded BLAS

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from gan_assets.core.evaluation.metrics import Evidence, MetricContext  # noqa: E402
from gan_assets.core.evaluation.metrics.distances import (  # noqa: E402
    fd,
    frechet_distance_from_stats,
    gaussian_stats,
    kid,
    kid_subset_indices,
)


def _evidence(features: torch.Tensor) -> Evidence:
    return Evidence(features=features, probs=torch.full((features.shape[0], 2), 0.5))


def _ctx(**kw) -> MetricContext:
    return MetricContext(class_prior=torch.tensor([0.5, 0.5]), **kw)


def _scipy_fd(mu1, s1, mu2, s2) -> float:
    """The textbook FID formula with scipy.linalg.sqrtm, single-threaded."""
    with threadpool_limits(limits=1):
        covmean = scipy.linalg.sqrtm(s1 @ s2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def _random_spd(d: int, gen: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_fd_matches_scipy_sqrtm_on_random_features():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(600, 16, generator=gen) @ torch.randn(16, 16, generator=gen)
    y = torch.randn(500, 16, generator=gen) * 1.5 + 0.3
    xs, ys = x.double().numpy(), y.double().numpy()
    expected = _scipy_fd(xs.mean(0), np.cov(xs, rowvar=False), ys.mean(0), np.cov(ys, rowvar=False))
    assert fd(_evidence(x), _evidence(y), _ctx())["fd"] == pytest.approx(expected, rel=1e-3)


def test_fd_of_a_set_with_itself_is_zero():
    x = torch.randn(400, 32, generator=torch.Generator().manual_seed(1))
    assert fd(_evidence(x), _evidence(x), _ctx())["fd"] == pytest.approx(0.0, abs=1e-6)


def test_closed_form_one_dimensional():
    # N(0, 1) vs N(3, 4): 9 + 1 + 4 - 2*sqrt(1*4) = 10
    one = torch.ones(1, 1, dtype=torch.float64)
    assert frechet_distance_from_stats(torch.zeros(1), one, torch.tensor([3.0]), 4 * one) == pytest.approx(10.0)


def test_closed_form_commuting_covariances():
    # diagonal Σ's commute: FD = |Δμ|² + Σ (sqrt a_i - sqrt b_i)²
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 9.0])
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    expected = 1 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0
    assert frechet_distance_from_stats(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_closed_form_non_commuting_covariances_match_scipy():
    gen = torch.Generator().manual_seed(2)
    s1, s2 = _random_spd(8, gen), _random_spd(8, gen)
    mu1, mu2 = torch.randn(8, generator=gen, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
    expected = _scipy_fd(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_singular_covariance_stays_finite_and_real():
    # rank-deficient Σ (fewer samples than dims) is where sqrtm goes complex; eigh does not
    x = torch.randn(10, 32, generator=torch.Generator().manual_seed(3))
    value = fd(_evidence(x), _evidence(x + 1.0), _ctx())["fd"]
    assert value == pytest.approx(32.0, rel=1e-6)  # same Σ, mean shifted by 1 in each of 32 dims


def test_fd_of_large_gaussian_samples_approaches_closed_form():
    gen = torch.Generator().manual_seed(4)
    s1, s2 = _random_spd(4, gen), _random_spd(4, gen)
    mu1, mu2 = torch.zeros(4, dtype=torch.float64), torch.tensor([1.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    n = 50_000
    x = mu1 + torch.randn(n, 4, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(s1).T
    y = mu2 + torch.randn(n, 4, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(s2).T
    exact = frechet_distance_from_stats(mu1, s1, mu2, s2)
    assert fd(_evidence(x), _evidence(y), _ctx())["fd"] == pytest.approx(exact, rel=0.02)


def test_gaussian_stats_uses_unbiased_covariance():
    x = torch.tensor([[0.0], [2.0]])
    mu, cov = gaussian_stats(x)
    torch.testing.assert_close(mu, torch.tensor([1.0], dtype=torch.float64))
    torch.testing.assert_close(cov, torch.tensor([[2.0]], dtype=torch.float64))  # (1 + 1) / (2 - 1)
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_stats(x[:1])


def _numpy_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Straightforward loops over pairs, k(a, b) = (a·b/d + 1)³."""
    m, d = x.shape

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_matches_numpy_reference_on_one_whole_set_subset():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(40, 6, generator=gen, dtype=torch.float64) * 1.3 + 0.4
    out = kid(_evidence(x), _evidence(y), _ctx(kid_subsets=1, kid_subset_size=1000))
    assert out["kid"] == pytest.approx(_numpy_mmd2_unbiased(x.numpy(), y.numpy()), rel=1e-3)
    assert out["kid_std"] == 0.0


def test_kid_subsets_are_clipped_and_without_replacement():
    subsets = kid_subset_indices(80, 60, _ctx(kid_subsets=3, kid_subset_size=1000))
    assert len(subsets) == 3
    for i, j in subsets:
        assert len(i) == len(j) == 60
        assert len(set(i.tolist())) == 60 and int(i.max()) < 80
        assert sorted(j.tolist()) == list(range(60))


def test_kid_of_identical_distributions_is_within_noise():
    gen = torch.Generator().manual_seed(6)
    x, y = torch.randn(2000, 32, generator=gen), torch.randn(2000, 32, generator=gen)
    out = kid(_evidence(x), _evidence(y), _ctx(kid_subsets=20, kid_subset_size=500))
    assert abs(out["kid"]) < 3 * out["kid_std"]
    shifted = kid(_evidence(x), _evidence(y + 0.5), _ctx(kid_subsets=20, kid_subset_size=500))
    assert shifted["kid"] > 10 * max(out["kid_std"], shifted["kid_std"])


def test_kid_is_deterministic_per_seed():
    gen = torch.Generator().manual_seed(7)
    x, y = torch.randn(300, 8, generator=gen), torch.randn(300, 8, generator=gen) + 0.2
    ctx = _ctx(kid_subsets=5, kid_subset_size=100)
    assert kid(_evidence(x), _evidence(y), ctx) == kid(_evidence(x), _evidence(y), ctx)
    assert kid(_evidence(x), _evidence(y), _ctx(kid_subsets=5, kid_subset_size=100, seed=1)) != kid(
        _evidence(x), _evidence(y), ctx
    )
    assert math.isfinite(kid(_evidence(x), _evidence(y), ctx)["kid_std"])
