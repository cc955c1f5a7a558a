"""GAN metrics in the evaluator's feature space: a registry of small functions.

Every metric has the signature (samples, real, ctx) -> {column: value}; one metric may
fill several columns (kid -> kid, kid_std). Callers pick metrics by registry key
(`compute_metrics(("fd", "kid"), ...)`) and can know the columns up front
(`metric_columns`) to lay out a table before anything is computed.
Never imports dagster: the assets call in, not the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

from gan_assets.core.config import DEFAULT_IMAGE_METRICS, DEFAULT_POINT_METRICS, METRIC_COLUMNS, PIXEL_METRICS
from gan_assets.core.data.sources.mixtures import grid_centers, ring_centers  # the modes the mode metrics score

from .base import Evidence, MetricContext, MetricFn
from .classes import class_coverage, class_kl, classifier_score, confidence
from .distances import fd, frechet_distance_from_stats, gaussian_stats, kid, mmd2_unbiased
from .manifold import precision_recall
from .memorisation import nn_ratio
from .modes import modes
from .neighbours import median_nearest_distance, nearest_distances

METRICS: dict[str, MetricFn] = {
    "fd": fd,
    "kid": kid,
    "precision_recall": precision_recall,
    "class_coverage": class_coverage,
    "class_kl": class_kl,
    "confidence": confidence,
    "classifier_score": classifier_score,
    "nn_ratio": nn_ratio,
    "modes": modes,
}

_COLUMNS = METRIC_COLUMNS  # the schema names every metric and its columns; this registry implements them
assert _COLUMNS.keys() == METRICS.keys()


def scored_metrics(names: Sequence[str], points: bool) -> tuple[str, ...]:
    """The metrics that run on a dataset: for 2-D points, `names` less the pixel metrics plus the mode
    metrics (the image defaults thus work unchanged on ring8/grid25); for images, `names` as given."""
    if not points:
        return tuple(names)
    kept = tuple(n for n in names if n not in PIXEL_METRICS)
    return kept + tuple(m for m in DEFAULT_POINT_METRICS if m not in kept)


def _check_names(names: Sequence[str]) -> None:
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of metric names, not the string {names!r}")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; allowed: {sorted(METRICS)}")


def metric_columns(name: str) -> tuple[str, ...]:
    """The columns metric `name` returns, in order."""
    _check_names([name])
    return _COLUMNS[name]


def compute_metrics(
    names: Sequence[str], samples: Evidence, real: Evidence, ctx: MetricContext
) -> dict[str, float]:
    """Run the named metrics (duplicates run once) and merge their columns, in order.

    All names are checked before any work starts, so a typo fails in milliseconds rather
    than after a 10 s KID. Every metric sees one device, the samples': the real evidence and the
    context's tensors are moved there once, here, rather than by each metric that meets them.
    """
    _check_names(names)
    device = samples.features.device
    real, ctx = real.to(device), ctx.to(device)
    out: dict[str, float] = {}
    for name in dict.fromkeys(names):
        values = METRICS[name](samples, real, ctx)
        if tuple(values) != _COLUMNS[name]:
            raise RuntimeError(f"metric {name} returned {tuple(values)}, promised {_COLUMNS[name]}")
        out.update(values)
    return out


__all__ = [
    "DEFAULT_IMAGE_METRICS", "DEFAULT_POINT_METRICS", "METRICS", "PIXEL_METRICS", "Evidence", "MetricContext",
    "MetricFn", "compute_metrics", "scored_metrics", "frechet_distance_from_stats", "gaussian_stats", "grid_centers",
    "median_nearest_distance", "metric_columns", "mmd2_unbiased", "nearest_distances", "ring_centers",
]
