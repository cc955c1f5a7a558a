"""Differentiable augmentation of every image D sees (beyond the tutorial).

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): the same random
transformations are applied to real and generated images, in D's step and in G's, and they are differentiable, so
G's gradient flows through them. D then cannot memorise a small training set, and G is not taught to produce the
augmentations (both sides are augmented alike). The three policies follow the paper's code (DiffAugment_pytorch.py):
- `color`: brightness ±0.5, saturation ×[0, 2], contrast ×[0.5, 1.5], one draw per image;
- `translation`: a shift of up to 1/8 of the side, padded with the background;
- `cutout`: a square of half the side set to 0, at a random place.

Adaptive strength (ADA, Karras et al. 2020): each image is augmented with probability p, and p follows D's
overfitting heuristic r = E[sign D(x_real)] (its logit's sign on reals): every `ADA_INTERVAL` D steps p moves up when
r exceeds the target and down when it falls short, fast enough to go from 0 to 1 in `ADA_IMAGES` real images. p is a
device tensor (no host sync) saved in every checkpoint, so a resumed run continues it exactly.

Every draw comes from the run's generator (`GanState.rng`): augmentation is reproducible and resumes exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

ADA_INTERVAL = 4  # D steps between adjustments of p (StyleGAN2-ADA's default)
ADA_IMAGES = 500_000  # real images over which p can move from 0 to 1 (StyleGAN2-ADA's ada_kimg 500)
TRANSLATION_RATIO, CUTOUT_RATIO = 0.125, 0.5  # the paper's defaults


def color(x: Tensor, rng: torch.Generator) -> Tensor:
    n = x.shape[0]
    draw = torch.rand(n, 3, 1, 1, 1, device=x.device, generator=rng)  # brightness, saturation, contrast (fp32)
    x = x + (draw[:, 0] - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (draw[:, 1] * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (draw[:, 2] + 0.5) + mean


def translation(x: Tensor, rng: torch.Generator, ratio: float = TRANSLATION_RATIO) -> Tensor:
    """Each image shifted by up to `ratio` of its side in each direction; what enters is background (−1)."""
    n, _, h, w = x.shape
    limit_y, limit_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    shift_y = torch.randint(-limit_y, limit_y + 1, (n, 1, 1), device=x.device, generator=rng)
    shift_x = torch.randint(-limit_x, limit_x + 1, (n, 1, 1), device=x.device, generator=rng)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + shift_y).clamp(-1, h)  # -1 and h: the padding
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + shift_x).clamp(-1, w)
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    index = (rows + 1) * (w + 2) + (cols + 1)  # into the flattened padded image
    flat = padded.flatten(2).gather(2, index.flatten(1).unsqueeze(1).expand(-1, x.shape[1], -1))
    return flat.view_as(x)


def cutout(x: Tensor, rng: torch.Generator, ratio: float = CUTOUT_RATIO) -> Tensor:
    """A square of `ratio` of the side, at a random place in each image, set to 0 (mid-grey in [-1, 1])."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - size_y % 2), (n, 1, 1), device=x.device, generator=rng) - size_y // 2
    left = torch.randint(0, w + (1 - size_x % 2), (n, 1, 1), device=x.device, generator=rng) - size_x // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def augment(x: Tensor, policies: Sequence[str], rng: torch.Generator, p: Tensor | None = None) -> Tensor:
    """`x` (N, C, H, W) through each policy in the paper's order (color, translation, cutout); with `p`, each image is
    augmented with probability p and passes unchanged otherwise (ADA)."""
    out = x
    for name in POLICIES:
        if name in policies:
            out = POLICIES[name](out, rng)
    if p is None:
        return out
    keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=rng) >= p
    return torch.where(keep, x, out)


def ada_adjust(p: Tensor, sign_mean: Tensor, target: float, batch_size: int) -> Tensor:
    """The next p: one ADA step up or down by the images seen since the last adjustment over `ADA_IMAGES`."""
    step = batch_size * ADA_INTERVAL / ADA_IMAGES
    return (p + torch.sign(sign_mean - target) * step).clamp(0.0, 1.0)
