"""Improved precision and recall (Kynkäänniemi et al. 2019) in evaluator features.

Each set approximates its manifold by the union of balls around its points, the radius of
each ball being the distance to the point's k-th nearest neighbour in the same set.
precision = share of samples inside the real manifold (fidelity);
recall    = share of real points inside the sample manifold (diversity).
A collapsed generator keeps precision high while its recall falls.
"""

from __future__ import annotations

import torch

from .base import Evidence, MetricContext
from .neighbours import kth_neighbour_radii, squared_distance_blocks


def manifold_precision_recall(samples: torch.Tensor, real: torch.Tensor, k: int) -> tuple[float, float]:
    """(precision, recall) from one pass over the sample x real distance matrix, by row blocks.

    Point i lies in the ball of point j when |i - j| <= radius_j (inclusive, as in the paper's
    code), compared as squared distances.
    """
    real_radii = kth_neighbour_radii(real, k)
    sample_radii = kth_neighbour_radii(samples, k)
    sample_inside = torch.zeros(samples.shape[0], dtype=torch.bool, device=samples.device)
    real_inside = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)
    for start, d2 in squared_distance_blocks(samples, real):
        rows = slice(start, start + d2.shape[0])
        sample_inside[rows] = (d2 <= real_radii.unsqueeze(0)).any(dim=1)
        real_inside |= (d2 <= sample_radii[rows].unsqueeze(1)).any(dim=0)
    return float(sample_inside.double().mean()), float(real_inside.double().mean())


def precision_recall(samples: Evidence, real: Evidence, ctx: MetricContext) -> dict[str, float]:
    """Improved precision/recall with k = ctx.pr_k (higher is better for both)."""
    precision, recall = manifold_precision_recall(samples.features, real.features, ctx.pr_k)
    return {"precision": precision, "recall": recall}
