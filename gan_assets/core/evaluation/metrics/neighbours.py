"""Chunked nearest-neighbour geometry shared by precision/recall and memorisation.

A 10,000 x 10,000 float32 distance matrix is 400 MB; we never hold more than
about 64 MB of it at once, one block of query rows at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

_BLOCK_ELEMENTS = 1 << 24  # 16 M floats = 64 MB per block of the distance matrix


def _block_rows(n_reference: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, n_reference))


def squared_distance_blocks(
    queries: torch.Tensor, reference: torch.Tensor
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (first_row, block) with block[i, j] = |q_i - r_j|², in float32, by row blocks.

    Uses |q|² + |r|² - 2 q·r (one matmul per block, the fast path); rounding can push a
    true zero slightly off zero, so results are clamped at 0.
    """
    if queries.shape[1] != reference.shape[1]:
        raise ValueError(f"dimension mismatch: {queries.shape[1]} vs {reference.shape[1]}")
    q, r = queries.float(), reference.float()
    r_sq = r.square().sum(1)
    step = _block_rows(r.shape[0])
    for start in range(0, q.shape[0], step):
        block = q[start : start + step]
        d2 = torch.addmm(r_sq.unsqueeze(0), block, r.T, alpha=-2.0)  # |r|² - 2 q·r
        d2.add_(block.square().sum(1, keepdim=True)).clamp_(min=0.0)
        yield start, d2


def kth_neighbour_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """(n,) squared distance from each point to its k-th nearest *other* point of the set.

    Takes the (k+1) smallest distances, the first being the point itself (distance ~0),
    as in Kynkäänniemi et al. 2019; a duplicate of a point counts as a neighbour.
    """
    if not 1 <= k < points.shape[0]:
        raise ValueError(f"k={k} needs at least k+1={k + 1} points, got {points.shape[0]}")
    radii = torch.empty(points.shape[0], device=points.device)
    for start, d2 in squared_distance_blocks(points, points):
        radii[start : start + d2.shape[0]] = d2.topk(k + 1, dim=1, largest=False).values[:, k]
    return radii


def nearest_distances(queries: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(n_queries,) float64 L2 distance from each query row to its nearest reference row.

    The nearest index is found with the fast float32 matmul form, then the distance to it
    is recomputed exactly in float64: memorised copies must measure ~0, not the ~1e-2
    that cancellation in |q|² + |r|² - 2 q·r leaves on 1024-pixel images.
    """
    if queries.ndim != 2 or reference.ndim != 2 or reference.shape[0] == 0:
        raise ValueError("queries and reference must be non-empty 2-D tensors (n, P)")
    nearest = torch.empty(queries.shape[0], dtype=torch.long, device=queries.device)
    for start, d2 in squared_distance_blocks(queries, reference):
        nearest[start : start + d2.shape[0]] = d2.argmin(dim=1)
    diff = queries.double() - reference[nearest.to(reference.device)].double()
    return diff.norm(dim=1)


def median_nearest_distance(queries: torch.Tensor, reference: torch.Tensor) -> float:
    """Median of nearest_distances (interpolated median, the same rule on both sides of nn_ratio).

    Call it once with (held-out pixels, train pixels) to fill MetricContext.heldout_nn_distance.
    """
    return float(torch.quantile(nearest_distances(queries, reference), 0.5))
