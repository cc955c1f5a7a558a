"""The model families beside the GAN (tutorial §2's taxonomy of maximum-likelihood models).

Each family is one module with its network and its loss as pure functions; this registry is all the rest of
the code knows of them. Every family trains with Adam on its negative log-likelihood (a bound for the VAE)
and offers the two things later stages read (`RunManifest.load_generator` / `load_model`):
- "a checkpoint can draw N samples": `Sampler`, with the GAN generator's sampling interface (images in
  [-1, 1] from z ~ N(0, I) of `z_dim`), so scores, galleries and the leaderboard treat every family alike;
- "a checkpoint can score test log-likelihood": `bits_per_dim` per held-out image, exact for the FVBN and Real
  NVP, the ELBO bound for the VAE (`bits_per_dim_is_bound`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from gan_assets.core.config import ModelConfig
from gan_assets.core.models import fvbn, real_nvp, vae


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[ModelConfig, Sequence[int]], nn.Module]
    loss: Callable[[nn.Module, Tensor, torch.Generator], tuple[Tensor, dict[str, Tensor]]]
    bits_per_dim: Callable[[nn.Module, Tensor, torch.Generator], Tensor]
    sample: Callable[[nn.Module, Tensor], Tensor]
    z_dim: Callable[[nn.Module], int]
    bits_per_dim_is_bound: bool
    stat_names: tuple[str, ...]
    has_latent_space: bool  # whether walking between two z is a walk in a learned code (not for the FVBN)

    def lr(self, model: ModelConfig) -> float:
        return getattr(model, self.name).lr


def _vae(model: ModelConfig, shape: Sequence[int]) -> nn.Module:
    return vae.ConvVAE(shape[0], shape[1], model.vae.latent_dim, model.vae.width)


def _fvbn(model: ModelConfig, shape: Sequence[int]) -> nn.Module:
    return fvbn.PixelCNN(shape[0], shape[1], model.fvbn.width, model.fvbn.layers)


def _real_nvp(model: ModelConfig, shape: Sequence[int]) -> nn.Module:
    cfg = model.real_nvp
    return real_nvp.RealNVP(shape[0], shape[1], cfg.width, cfg.blocks, cfg.couplings)


FAMILIES = {
    "vae": Family("vae", _vae, vae.loss, vae.bits_per_dim, vae.sample, vae.z_dim, True,
                  ("bits_per_dim", "reconstruction_bpd", "kl_bpd"), True),
    "fvbn": Family("fvbn", _fvbn, fvbn.loss, fvbn.bits_per_dim, fvbn.sample, fvbn.z_dim, False,
                   ("bits_per_dim",), False),
    "real_nvp": Family("real_nvp", _real_nvp, real_nvp.loss, real_nvp.bits_per_dim, real_nvp.sample,
                       real_nvp.z_dim, False, ("bits_per_dim",), True),
}


def family_of(model: ModelConfig) -> Family:
    if model.family not in FAMILIES:
        raise ValueError(f"model.family {model.family!r} has no likelihood family module; known: {sorted(FAMILIES)}")
    return FAMILIES[model.family]


class Sampler(nn.Module):
    """A trained likelihood model behind the GAN generator's sampling interface: `sampler(z)` → images in [-1, 1]
    for z ~ N(0, I) of `z_dim`; unconditional, without batch norm (so every sampling mode is the same)."""

    conditional = False
    num_classes = 0

    def __init__(self, family: Family, model: nn.Module) -> None:
        super().__init__()
        self.family, self.model = family, model.eval()
        self.z_dim = family.z_dim(model)
        self.has_latent_space = family.has_latent_space

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.family.sample(self.model, z).clamp(-1, 1)
