"""A fully visible belief net: a PixelCNN (van den Oord et al. 2016) over 8-bit pixels, tutorial §2's FVBN.

p(x) = Π_i p(x_i | x_<i) in raster order (rows, then columns, then channels R → G → B), each factor a 256-way
softmax. Masked convolutions enforce the order: a mask-A layer (the input) hides the current pixel's own
channel and those after it; mask-B layers (all later ones) let a channel see itself, since by then it only
carries information about earlier inputs. Hidden layers use gated units (tanh · sigmoid, the gated PixelCNN's
nonlinearity); the stack is the original PixelCNN's, blind spot included (no vertical/horizontal split).

The likelihood is exact and computed in one parallel pass; sampling is sequential: one network pass per
pixel and channel, C·H·W of them. Each pass evaluates only the window of earlier rows and nearby columns
that the output can see (its receptive field, `receptive_radius`), which gives exactly the full pass's output
(tests/core/models/test_families.py) at a fraction of the cost; the number of sequential passes is unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEVELS = 256
FIRST_KERNEL = 5


def channel_groups(n: int, colours: int) -> Tensor:
    """Colour channel (0..colours−1) that each of `n` feature channels belongs to, in contiguous blocks."""
    return torch.arange(n) * colours // n


class MaskedConv2d(nn.Conv2d):
    """A conv whose output at a pixel sees only earlier pixels, and at that pixel only earlier colour groups
    (mask A) or earlier-or-equal ones (mask B)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, mask: str, colours: int,
                 out_groups: Tensor | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2)
        out_groups = channel_groups(out_channels, colours) if out_groups is None else out_groups
        in_groups = channel_groups(in_channels, colours)
        centre = out_groups[:, None] > in_groups[None, :] if mask == "A" else out_groups[:, None] >= in_groups[None, :]
        weight_mask = torch.ones(out_channels, in_channels, kernel, kernel)
        weight_mask[:, :, kernel // 2, kernel // 2 + 1:] = 0  # later columns of the current row
        weight_mask[:, :, kernel // 2 + 1:, :] = 0  # later rows
        weight_mask[:, :, kernel // 2, kernel // 2] = centre.float()
        self.register_buffer("mask", weight_mask)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class GatedLayer(nn.Module):
    """x + 1×1(tanh(a) · σ(b)), with (a, b) from one masked 3×3 conv: a residual gated PixelCNN unit."""

    def __init__(self, width: int, colours: int) -> None:
        super().__init__()
        groups = channel_groups(width, colours)
        self.conv = MaskedConv2d(width, 2 * width, 3, "B", colours, out_groups=torch.cat([groups, groups]))
        self.out = MaskedConv2d(width, width, 1, "B", colours)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.conv(x).chunk(2, dim=1)
        return x + self.out(torch.tanh(a) * torch.sigmoid(b))


class PixelCNN(nn.Module):
    def __init__(self, channels: int, image_size: int, width: int, layers: int) -> None:
        super().__init__()
        self.shape = (channels, image_size, image_size)
        self.width, self.layers = width, layers
        self.input = MaskedConv2d(channels, width, FIRST_KERNEL, "A", channels)
        self.hidden = nn.ModuleList(GatedLayer(width, channels) for _ in range(layers))
        # logits laid out colour by colour: channel c·256 + level belongs to colour c
        self.output = MaskedConv2d(width, channels * LEVELS, 1, "B", channels)

    def features(self, images: Tensor) -> Tensor:
        """The last hidden layer (N, width, H, W); `images` uint8 or float levels 0..255."""
        h = F.relu(self.input(images.float() / 127.5 - 1.0))
        for layer in self.hidden:
            h = layer(h)
        return F.relu(h)

    def logits(self, features: Tensor) -> Tensor:
        """(N, C, 256, H, W) from `features` (a 1×1 conv: any pixels of them, e.g. just one)."""
        logits = self.output(features)
        return logits.view(len(features), self.shape[0], LEVELS, *logits.shape[-2:])

    def forward(self, images: Tensor) -> Tensor:
        """Logits (N, C, 256, H, W) of each pixel's level given the pixels before it."""
        return self.logits(self.features(images))

    @property
    def receptive_radius(self) -> int:
        """Pixels up, left or right that an output can depend on: the kernels' radii summed."""
        return FIRST_KERNEL // 2 + self.layers


def log_prob(model: PixelCNN, images: Tensor) -> Tensor:
    """log p(x) per image in nats: Σ_i log softmax(logits_i)[x_i], exact."""
    logits = model(images)
    return -F.cross_entropy(logits.transpose(1, 2), images.long(), reduction="none").flatten(1).sum(dim=1)


def loss(model: PixelCNN, images: Tensor, rng: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
    bpd = -log_prob(model, images).mean() / (math.log(2) * images[0].numel())
    return bpd, {"bits_per_dim": bpd.detach()}


@torch.no_grad()
def bits_per_dim(model: PixelCNN, images: Tensor, rng: torch.Generator) -> Tensor:
    """−log₂ p(x) / D per image: exact."""
    return -log_prob(model, images) / (math.log(2) * images[0].numel())


def z_dim(model: PixelCNN) -> int:
    return math.prod(model.shape)


def _level(logits: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF draw: the first level whose cumulative probability exceeds u (one per row)."""
    cdf = torch.softmax(logits.double(), dim=1).cumsum(dim=1)
    return (cdf < u[:, None]).sum(dim=1).clamp(max=LEVELS - 1)


@torch.no_grad()
def sample(model: PixelCNN, z: Tensor) -> Tensor:
    """Images in [-1, 1], one pixel and channel at a time, in the model's order. z ~ N(0, I) of C·H·W fixes the
    draws (u = Φ(z) picks each level by inverse CDF), so the same z give the same images."""
    channels, height, width = model.shape
    u = torch.special.ndtr(z.double()).view(len(z), channels, height, width)
    x = torch.zeros(len(z), channels, height, width, device=z.device)
    radius = model.receptive_radius
    for row in range(height):
        top = max(0, row - radius)
        for col in range(width):
            left, right = max(0, col - radius), min(width, col + radius + 1)
            for c in range(channels):  # a colour sees the ones before it: one pass each
                # the window the output at (row, col) sees; zero padding at its cut edges never reaches that output
                h = model.features(x[:, :, top:row + 1, left:right])[..., row - top:row - top + 1, col - left:]
                logits = model.logits(h[..., :1])[:, c, :, 0, 0]
                x[:, c, row, col] = _level(logits, u[:, c, row, col]).float()
    return x / 127.5 - 1.0


@torch.no_grad()
def sample_full_passes(model: PixelCNN, z: Tensor) -> Tensor:
    """`sample` without the window: every pass over the whole image (what the window must equal; tests only)."""
    channels, height, width = model.shape
    u = torch.special.ndtr(z.double()).view(len(z), channels, height, width)
    x = torch.zeros(len(z), channels, height, width, device=z.device)
    for row in range(height):
        for col in range(width):
            for c in range(channels):
                logits = model(x)[:, c, :, row, col]
                x[:, c, row, col] = _level(logits, u[:, c, row, col]).float()
    return x / 127.5 - 1.0
