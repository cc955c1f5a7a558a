"""What drawing samples costs and how sharp they are, measured the same way for every model family.

The tutorial (§2) claims a fully visible belief net samples slowly (one network pass per pixel), a GAN in one
parallel pass, and that VAE samples tend to be blurrier. `measure_sampling` times drawing 10,000 samples in
batches of 500 from fixed z (a family slower than the time budget is timed on the batches that fit and its
10,000-sample time extrapolated, flagged as such), and compares the samples' variance of the Laplacian (a
standard focus measure) with that of held-out real images: 1 is as sharp as the data, below 1 blurrier.
It is timed where the generator's weights are (z is drawn on the CPU and moved there before the clock starts).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_assets.core.evaluation.devices import module_device, synchronize
from gan_assets.core.evaluation.sampling import class_labels

SPEED_SAMPLES = 10_000
SPEED_BATCH = 500  # the batch scoring draws in (sampling.generate)
SPEED_BUDGET_SECONDS = 120.0
SPEED_SEED_OFFSET = 4_999  # its own z stream, apart from training's, scoring's and the gallery's
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class SamplingFigures:
    samples_timed: int  # samples actually drawn while timing
    sampling_seconds: float
    samples_per_second: float
    seconds_for_10000_samples: float  # measured, or extrapolated from samples_timed when the budget ran out
    sampling_extrapolated: bool
    sharpness: float  # variance of the Laplacian, samples / held-out real images

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def laplacian_variance(images: Tensor) -> float:
    """Mean over images and channels of the variance of the 3×3 Laplacian: low for blurred images."""
    flat = images.flatten(0, 1)[:, None].float()
    response = F.conv2d(flat, LAPLACIAN.view(1, 1, 3, 3).to(flat))
    return float(response.flatten(1).var(dim=1).mean())


@torch.no_grad()
def measure_sampling(generator: nn.Module, real_images: Tensor, *, seed: int, total: int = SPEED_SAMPLES,
                     batch: int = SPEED_BATCH, budget_seconds: float = SPEED_BUDGET_SECONDS) -> SamplingFigures:
    """Time drawing `total` samples from `generator` (z ~ N(0, I) of its z_dim) in batches of `batch`, stopping
    after the batch that passes `budget_seconds`; `real_images` in [-1, 1] are the sharpness reference."""
    rng = torch.Generator().manual_seed(seed + SPEED_SEED_OFFSET)
    device = module_device(generator)
    drawn, seconds, first = 0, 0.0, None
    while drawn < total and (drawn == 0 or seconds < budget_seconds):  # at least one batch
        n = min(batch, total - drawn)
        z, labels = torch.randn(n, generator.z_dim, generator=rng).to(device), class_labels(generator, n)
        synchronize(device)  # the copy of z is not the sampler's time
        started = time.perf_counter()
        images = generator(z, labels)
        synchronize(device)  # CUDA returns before it computes: stop the clock when the images exist
        seconds += time.perf_counter() - started
        first = images if first is None else first
        drawn += n
    rate = drawn / seconds if seconds > 0 else float("inf")
    return SamplingFigures(drawn, seconds, rate, total / rate, drawn < total,
                           laplacian_variance(first) / laplacian_variance(real_images))
