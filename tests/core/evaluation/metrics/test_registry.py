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
    ring_centers,
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


def _points(n: int, seed: int) -> Evidence:
    """Evidence of 2-D points near the 8 modes of a ring (radius 2), for the mode metrics."""
    gen = torch.Generator().manual_seed(seed)
    points = ring_centers(8, 2.0)[torch.randint(0, 8, (n,), generator=gen)] + 0.02 * torch.randn(n, 2, generator=gen)
    return Evidence(features=points.double(), probs=torch.randn(n, 8, generator=gen).softmax(dim=1), points=points)


def test_every_metric_sees_the_real_evidence_and_the_context_on_the_samples_device(monkeypatch):
    """compute_metrics places the real side and the context's tensors once, on the samples' device (meta here, the
    one device besides the CPU that a CPU-only machine has): no metric can meet two devices."""
    samples, real = _evidence(20, 1).to(torch.device("meta")), _evidence(30, 2)
    ctx = MetricContext(class_prior=torch.full((5,), 0.2), mode_centers=ring_centers(8, 2.0), mode_std=0.02)
    seen = {}

    def spy(name):
        def metric(s: Evidence, r: Evidence, c: MetricContext) -> dict[str, float]:
            tensors = [s.features, s.probs, s.pixels, r.features, r.probs, r.pixels, c.class_prior, c.mode_centers]
            seen[name] = {t.device.type for t in tensors}
            return dict.fromkeys(COLUMNS[name], 0.0)
        return metric

    for name in METRICS:
        monkeypatch.setitem(METRICS, name, spy(name))
    compute_metrics(list(METRICS), samples, real, ctx)
    assert seen == {name: {"meta"} for name in COLUMNS}
    # not vacuous: the caller's real evidence and context stayed on the CPU; the metrics saw moved copies
    assert real.features.device.type == ctx.class_prior.device.type == ctx.mode_centers.device.type == "cpu"


def test_evidence_and_context_move_every_tensor_and_keep_the_rest():
    real = _points(10, 0)
    ctx = MetricContext(class_prior=torch.full((8,), 1 / 8), seed=3, mode_centers=ring_centers(8, 2.0), mode_std=0.02)
    moved, meta = real.to(torch.device("meta")), ctx.to(torch.device("meta"))
    assert {t.device.type for t in (moved.features, moved.probs, moved.points)} == {"meta"} and moved.pixels is None
    assert meta.class_prior.is_meta and meta.mode_centers.is_meta and (meta.seed, meta.mode_std) == (3, 0.02)
    assert Evidence.cat([real, real]).points.shape == (20, 2) and Evidence.cat([real]).pixels is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_give_the_cpu_numbers():
    """Samples and real evidence on CUDA, the context (class prior, mode centres) left on the CPU, as scoring builds
    it: every metric, class_kl and the mode metrics included, gives the CPU's numbers."""
    samples, real = _evidence(300, 1), _evidence(400, 2)
    ctx = _ctx(real)
    assert ctx.class_prior.device.type == "cpu"
    cuda = torch.device("cuda")

    cpu = compute_metrics(DEFAULT_IMAGE_METRICS, samples, real, ctx)
    gpu = compute_metrics(DEFAULT_IMAGE_METRICS, samples.to(cuda), real.to(cuda), ctx)
    assert gpu == pytest.approx(cpu, rel=1e-4, abs=1e-6)
    assert compute_metrics(["class_kl"], samples.to(cuda), real, ctx) == pytest.approx(
        compute_metrics(["class_kl"], samples, real, ctx), abs=1e-9)  # the real side left on the CPU, too

    points, real_points = _points(500, 3), _points(500, 4)
    point_ctx = MetricContext(class_prior=torch.full((8,), 1 / 8), mode_centers=ring_centers(8, 2.0), mode_std=0.02)
    assert point_ctx.mode_centers.device.type == "cpu"
    names = ["modes", "class_kl", "fd"]
    cpu = compute_metrics(names, points, real_points, point_ctx)
    gpu = compute_metrics(names, points.to(cuda), real_points.to(cuda), point_ctx)
    assert cpu["modes"] == 8 and gpu == pytest.approx(cpu, rel=1e-4, abs=1e-6)
