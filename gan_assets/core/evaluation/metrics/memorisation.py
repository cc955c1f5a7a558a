"""Memorisation: are samples closer to training images than fresh real images are?

nn_ratio = median over samples of the pixel L2 distance to the nearest *train* image,
divided by the same median for a *held-out* real split (ctx.heldout_nn_distance,
computed once per dataset with `median_nearest_distance(heldout, train)`).

  ~1   samples sit as far from the train set as unseen real data does;
  << 1 samples sit closer to training images than fresh data does: memorisation/copying;
  > 1  samples are off the data (blurry, noisy) or simply far from it.
"""

from __future__ import annotations

from .base import Evidence, MetricContext
from .neighbours import median_nearest_distance


def nn_ratio(samples: Evidence, real: Evidence, ctx: MetricContext) -> dict[str, float]:
    """Needs samples.pixels, real.pixels (the train images) and ctx.heldout_nn_distance."""
    if samples.pixels is None or real.pixels is None:
        raise ValueError("nn_ratio needs pixels on both evidences (real = the train images)")
    if ctx.heldout_nn_distance is None:
        raise ValueError(
            "nn_ratio needs ctx.heldout_nn_distance = median_nearest_distance(heldout_pixels, train_pixels)"
        )
    if samples.pixels.shape[1] != real.pixels.shape[1]:
        raise ValueError(f"pixel sizes differ: {samples.pixels.shape[1]} vs {real.pixels.shape[1]}")
    sample_median = median_nearest_distance(samples.pixels, real.pixels)
    return {"nn_ratio": sample_median / ctx.heldout_nn_distance}
