"""The registry: names, columns, errors, determinism, boundary checks, no dagster."""


import pytest
import torch

from gan_assets.core.evaluation.metrics import (
    DEFAULT_IMAGE_METRICS,
    METRICS,
    Evidence,
    MetricContext,
    compute_metrics,
    median_nearest_distance,
    metric_columns,
)

COLUMNS = {
    "fd": ("fd",),
    "kid": ("kid", "kid_std"),
    "precision_recall": ("precision", "recall"),
    "class_coverage": ("class_coverage",),
    "class_kl": ("class_kl",),
    "confidence": ("confidence",),
    "classifier_score": ("classifier_score",),
    "nn_ratio": ("nn_ratio",),
    "modes": ("modes", "hq_fraction", "reverse_kl"),
}


def _evidence(n: int, seed: int) -> Evidence:
    gen = torch.Generator().manual_seed(seed)
    return Evidence(
        features=torch.randn(n, 16, generator=gen),
        probs=torch.randn(n, 5, generator=gen).softmax(dim=1),
        pixels=torch.rand(n, 64, generator=gen),
    )


def _ctx(real: Evidence, seed: int = 0) -> MetricContext:
    heldout = torch.rand(50, 64, generator=torch.Generator().manual_seed(9))
    return MetricContext(
        class_prior=torch.full((5,), 0.2), seed=seed, kid_subsets=10, kid_subset_size=100,
        heldout_nn_distance=median_nearest_distance(heldout, real.pixels),
    )


def test_registry_keys_and_columns_are_the_interface():
    assert {name: metric_columns(name) for name in METRICS} == COLUMNS
    assert set(DEFAULT_IMAGE_METRICS) <= set(METRICS)


def test_unknown_names_fail_before_any_work_and_list_the_allowed():
    s = _evidence(10, 0)
    with pytest.raises(ValueError, match=r"\['fid', 'is'\].*allowed.*'class_kl'"):
        compute_metrics(["fd", "fid", "is"], s, s, _ctx(s))
    with pytest.raises(ValueError, match="unknown"):
        metric_columns("fid")
    with pytest.raises(TypeError, match="sequence"):
        compute_metrics("fd", s, s, _ctx(s))


def test_default_metrics_fill_every_column_deterministically():
    samples, real = _evidence(300, 1), _evidence(400, 2)
    first = compute_metrics(DEFAULT_IMAGE_METRICS, samples, real, _ctx(real))
    again = compute_metrics(DEFAULT_IMAGE_METRICS, samples, real, _ctx(real))
    assert first == again
    assert tuple(first) == tuple(c for name in DEFAULT_IMAGE_METRICS for c in COLUMNS[name])
    assert all(isinstance(v, float) for v in first.values())
    reseeded = compute_metrics(DEFAULT_IMAGE_METRICS, samples, real, _ctx(real, seed=1))
    assert {k for k in first if first[k] != reseeded[k]} == {"kid", "kid_std"}


def test_evidence_and_context_check_shapes_at_the_boundary():
    with pytest.raises(ValueError, match="probs has 3 rows"):
        Evidence(features=torch.zeros(4, 2), probs=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="points"):
        Evidence(features=torch.zeros(4, 2), probs=torch.zeros(4, 2), points=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="sum to 1"):
        MetricContext(class_prior=torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="coverage_threshold"):
        MetricContext(class_prior=torch.ones(1), coverage_threshold=0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_give_the_cpu_numbers():
    samples, real = _evidence(300, 1), _evidence(400, 2)
    ctx = _ctx(real)

    def to_cuda(e: Evidence) -> Evidence:
        return Evidence(features=e.features.cuda(), probs=e.probs.cuda(), pixels=e.pixels.cuda())

    cpu = compute_metrics(DEFAULT_IMAGE_METRICS, samples, real, ctx)
    gpu = compute_metrics(DEFAULT_IMAGE_METRICS, to_cuda(samples), to_cuda(real), ctx)
    assert gpu == pytest.approx(cpu, rel=1e-4, abs=1e-6)
