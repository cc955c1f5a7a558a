"""Real NVP (Dinh et al. 2017), tutorial §2's change-of-variables model: an invertible map from x to a latent z
of the same size, with a tractable Jacobian.

    log p(x) = log N(f(x); 0, I) + log |det ∂f/∂x|

Each affine coupling keeps the masked half of its input, x_b = b ⊙ x, and moves the other half:
y = x_b + (1 − b) ⊙ (x ⊙ exp(s(x_b)) + t(x_b)); its Jacobian is triangular, log |det| = Σ (1 − b) ⊙ s.
`couplings` checkerboard couplings (alternating parity) act on C×H×W, a squeeze (2×2 → channels) makes
4C×H/2×W/2, then as many channel-mask couplings, and an unsqueeze. Pixels are dequantised (x + u)/256 with
u ~ U[0, 1) and logit-transformed (y = logit(α + (1 − 2α)·x'), α = 0.05) first, both with their log-det, so
the bits/dim are of the 8-bit data: −log₂ p(x + u) / D with the density on [0, 256)^D (exact for that density;
as with every dequantised flow it bounds the discrete data's −log₂ P(x) / D, by Jensen).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ALPHA = 0.05  # keeps the logit away from ±inf at pixel values 0 and 255 (the paper's value)


def checkerboard(height: int, width: int, parity: int) -> Tensor:
    """(1, 1, H, W) mask: 1 where (row + column + parity) is even (the pixels a coupling keeps)."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ((rows + cols + parity) % 2 == 0).float()[None, None]


def channel_mask(channels: int, parity: int) -> Tensor:
    """(1, C, 1, 1) mask: 1 on the first half of the channels (parity 0) or the second (parity 1)."""
    first = (torch.arange(channels) < channels // 2).float()
    return (first if parity == 0 else 1 - first)[None, :, None, None]


class CouplingNet(nn.Module):
    """s and t of a coupling from its kept half: 3×3 conv, residual blocks, 3×3 conv to (s, t)."""

    def __init__(self, channels: int, width: int, blocks: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                                  nn.Conv2d(width, width, 3, padding=1)) for _ in range(blocks))
        self.last = nn.Conv2d(width, 2 * channels, 3, padding=1)
        nn.init.zeros_(self.last.weight), nn.init.zeros_(self.last.bias)  # every coupling starts as the identity
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))  # s = scale · tanh(·), as in the paper

    def forward(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        h = self.first(kept)
        for block in self.blocks:
            h = h + block(h)
        s, t = self.last(F.relu(h)).chunk(2, dim=1)
        return self.scale * torch.tanh(s), t


class AffineCoupling(nn.Module):
    def __init__(self, mask: Tensor, channels: int, width: int, blocks: int) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = CouplingNet(channels, width, blocks)

    def _s_t(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(kept)
        return s * (1 - self.mask), t * (1 - self.mask)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(y, log |det ∂y/∂x| per example)."""
        kept = x * self.mask
        s, t = self._s_t(kept)
        return kept + (1 - self.mask) * (x * torch.exp(s) + t), s.flatten(1).sum(dim=1)

    def inverse(self, y: Tensor) -> Tensor:
        kept = y * self.mask
        s, t = self._s_t(kept)
        return kept + (1 - self.mask) * ((y - t) * torch.exp(-s))


class RealNVP(nn.Module):
    def __init__(self, channels: int, image_size: int, width: int, blocks: int, couplings: int) -> None:
        super().__init__()
        if image_size % 2:
            raise ValueError(f"Real NVP squeezes 2×2 blocks: image_size {image_size} must be even")
        self.shape = (channels, image_size, image_size)
        self.checkerboard = nn.ModuleList(AffineCoupling(checkerboard(image_size, image_size, k % 2), channels,
                                                         width, blocks) for k in range(couplings))
        self.channelwise = nn.ModuleList(AffineCoupling(channel_mask(4 * channels, k % 2), 4 * channels, width, blocks)
                                         for k in range(couplings))

    def flow(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z = f(x) and log |det ∂f/∂x| per example, for x of shape (N, C, H, W) in logit space."""
        log_det = torch.zeros(len(x), device=x.device, dtype=x.dtype)
        for coupling in self.checkerboard:
            x, ld = coupling(x)
            log_det = log_det + ld
        x = F.pixel_unshuffle(x, 2)  # squeeze: C×H×W → 4C×H/2×W/2, a permutation (log-det 0)
        for coupling in self.channelwise:
            x, ld = coupling(x)
            log_det = log_det + ld
        return F.pixel_shuffle(x, 2), log_det

    def inverse(self, z: Tensor) -> Tensor:
        x = F.pixel_unshuffle(z, 2)
        for coupling in reversed(self.channelwise):
            x = coupling.inverse(x)
        x = F.pixel_shuffle(x, 2)
        for coupling in reversed(self.checkerboard):
            x = coupling.inverse(x)
        return x


def standard_normal_log_prob(z: Tensor) -> Tensor:
    return (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(dim=1)


def to_logit_space(images: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
    """Dequantise and logit-transform uint8 `images` with `noise` ~ U[0, 1): (y, log |det ∂y/∂x'|) with x' = x + u
    on [0, 256)^D, so densities of y convert to densities of the dequantised pixels."""
    p = ALPHA + (1 - 2 * ALPHA) * (images.float() + noise) / 256.0
    y = torch.log(p) - torch.log1p(-p)
    log_det = (math.log(1 - 2 * ALPHA) - math.log(256.0) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(dim=1)
    return y, log_det


def log_prob(model: RealNVP, images: Tensor, noise: Tensor) -> Tensor:
    """log p(x + u) per image in nats, the density of the dequantised pixels on [0, 256)^D."""
    y, log_det_pre = to_logit_space(images, noise)
    z, log_det_flow = model.flow(y)
    return standard_normal_log_prob(z) + log_det_flow + log_det_pre


def loss(model: RealNVP, images: Tensor, rng: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
    noise = torch.rand(images.shape, generator=rng, device=images.device)
    bpd = -log_prob(model, images, noise).mean() / (math.log(2) * images[0].numel())
    return bpd, {"bits_per_dim": bpd.detach()}


@torch.no_grad()
def bits_per_dim(model: RealNVP, images: Tensor, rng: torch.Generator) -> Tensor:
    noise = torch.rand(images.shape, generator=rng, device=images.device)
    return -log_prob(model, images, noise) / (math.log(2) * images[0].numel())


def z_dim(model: RealNVP) -> int:
    return math.prod(model.shape)


@torch.no_grad()
def sample(model: RealNVP, z: Tensor) -> Tensor:
    """x = f⁻¹(z) for z ~ N(0, I) of C·H·W, back through the logit: images in [-1, 1]."""
    y = model.inverse(z.view(len(z), *model.shape))
    pixels = (torch.sigmoid(y) - ALPHA) / (1 - 2 * ALPHA)  # in [0, 1) up to the dequantisation
    return pixels.mul(2).sub(1).clamp(-1, 1)
