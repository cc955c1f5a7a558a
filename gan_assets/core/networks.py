"""DCGAN generator and discriminator (Radford et al. 2015; tutorial §3.3), sized by the image.

The layout rules the tutorial states, which tests check by introspection:
- all-convolutional: G upsamples with stride-2 transposed convs, D downsamples with stride-2 convs,
  no pooling anywhere;
- normalisation in every hidden layer except G's output layer and D's input layer;
- ReLU in G with a Tanh output, LeakyReLU(0.2) in D, and D returns logits (no Sigmoid), because the
  losses, the maximum-likelihood game above all, are written on logits.

Reference and virtual BN (tutorial §4.3) run a fixed reference batch through the network together
with the minibatch; each network holds its reference input as a buffer, set once and never replaced.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gan_assets.core.norms import make_norm, set_reference_rows, uses_reference


def num_resolution_steps(image_size: int) -> int:
    """Stride-2 layers between 4×4 and the image: 32 → 3 (4→8→16→32)."""
    steps = int(math.log2(image_size // 4))
    if 4 * 2**steps != image_size or steps < 1:
        raise ValueError(f"image_size {image_size} is not 4·2^k with k ≥ 1")
    return steps


class _WithReference(nn.Module):
    """Shared plumbing: the fixed reference input and running it ahead of the minibatch."""

    def __init__(self, norm: str) -> None:
        super().__init__()
        self.norm = norm
        self.register_buffer("reference", None)

    def set_reference(self, reference: torch.Tensor) -> None:
        if self.reference is not None:
            raise RuntimeError("the reference batch is chosen once and never replaced")
        self.reference = reference.detach().clone()

    def _run(self, body: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not uses_reference(self.norm):
            return body(x)
        if self.reference is None:
            raise RuntimeError(f"norm {self.norm!r} needs a reference batch: call set_reference first")
        n_ref = len(self.reference)
        set_reference_rows(body, n_ref)
        reference = self.reference.to(x.dtype).reshape(n_ref, *x.shape[1:])  # G keeps z as (N, z_dim)
        out = body(torch.cat([reference, x]))
        return out[n_ref:]


class Generator(_WithReference):
    def __init__(self, z_dim: int, width: int, channels: int, image_size: int, norm: str = "batch") -> None:
        super().__init__(norm)
        self.z_dim, self.image_size, self.channels = z_dim, image_size, channels
        steps = num_resolution_steps(image_size)
        hidden = width * 2 ** (steps - 1)
        bias = norm == "none"  # a norm's shift makes a conv bias redundant; without a norm it is not
        # state size. z_dim x 1 x 1 -> hidden x 4 x 4
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, hidden, 4, 1, 0, bias=bias),
                                   make_norm(norm, hidden), nn.ReLU(True)]
        for _ in range(steps - 1):  # each block doubles the side and halves the channels
            layers += [nn.ConvTranspose2d(hidden, hidden // 2, 4, 2, 1, bias=bias),
                       make_norm(norm, hidden // 2), nn.ReLU(True)]
            hidden //= 2
        # state size. width x size/2 x size/2 -> channels x size x size; no norm on the output layer
        layers += [nn.ConvTranspose2d(hidden, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        assert z.ndim == 2 and z.shape[1] == self.z_dim, z.shape
        return self._run(self.body, z[:, :, None, None])


class Discriminator(_WithReference):
    def __init__(self, width: int, channels: int, image_size: int, norm: str = "batch") -> None:
        super().__init__(norm)
        steps = num_resolution_steps(image_size)
        bias = norm == "none"
        # state size. channels x size x size -> width x size/2 x size/2; no norm on the input layer
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        hidden = width
        for _ in range(steps - 1):  # each block halves the side and doubles the channels
            layers += [nn.Conv2d(hidden, hidden * 2, 4, 2, 1, bias=bias),
                       make_norm(norm, hidden * 2), nn.LeakyReLU(0.2, True)]
            hidden *= 2
        # state size. hidden x 4 x 4 -> 1 x 1 x 1: one logit per image
        layers.append(nn.Conv2d(hidden, 1, 4, 1, 0, bias=False))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4, x.shape
        return self._run(self.body, x).flatten()


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN paper: conv weights ~ N(0, 0.02); norm scales ~ N(1, 0.02), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif getattr(m, "weight", None) is not None and m.weight.ndim == 1:
            nn.init.normal_(m.weight, 1.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
