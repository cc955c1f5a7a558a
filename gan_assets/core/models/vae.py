"""A convolutional VAE (Kingma & Welling 2014), the tutorial's §2 example of a model trained on a lower bound.

Encoder: stride-2 convs from the image down to 4×4, then a linear layer to the Gaussian q(z|x) (mean and log
variance). Decoder: the mirror, ending in a discretised logistic per pixel over the 256 grey levels (the
PixelCNN++ / IAF decoder), so its bits/dim are over the same 8-bit data as the exact likelihoods of the other
families. The loss is the negative ELBO:
    -ELBO(x) = E_q[-log p(x|z)] + KL(q(z|x) ‖ N(0, I)) ≥ -log p(x)
with the KL in closed form and the expectation by one reparameterised sample. Samples are the decoder's mean
at z ~ N(0, I), the way VAE samples are usually shown (drawing every pixel from its logistic adds independent
pixel noise on top).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_assets.core.models.gan.networks import PADDED_SIZES, num_resolution_steps

BIN = 1.0 / 255.0  # half a grey level in [-1, 1]: 256 levels span 2, one level is 2/255
MIN_LOG_SCALE = -7.0  # a logistic narrower than this is a spike: its log-probability is ±inf in float32


def gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(mean, exp(log_var)) ‖ N(0, I)) per row, summed over the code: ½ Σ (μ² + σ² − 1 − log σ²)."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)


def discretised_logistic_log_prob(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log P(x) per pixel for uint8 `x` under a logistic (mean, exp(log_scale)) on [-1, 1] cut into 256 bins:
    the lowest bin takes everything below it, the highest everything above, so the 256 probabilities sum to 1."""
    x = x.float() / 127.5 - 1.0
    log_scale = log_scale.clamp(min=MIN_LOG_SCALE)
    inv_scale = torch.exp(-log_scale)
    upper, lower = inv_scale * (x - mean + BIN), inv_scale * (x - mean - BIN)
    log_cdf_upper = upper - F.softplus(upper)  # log σ(upper): the lowest bin
    log_survival_lower = -F.softplus(lower)  # log (1 − σ(lower)): the highest bin
    # log(σ(upper) − σ(lower)), stable: σ(a) − σ(b) = σ(a)·(1 − σ(b))·(1 − exp(b − a))
    log_mass = log_cdf_upper + log_survival_lower + torch.log(-torch.expm1(lower - upper))
    return torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_survival_lower, log_mass))


class ConvVAE(nn.Module):
    def __init__(self, channels: int, image_size: int, latent_dim: int, width: int) -> None:
        super().__init__()
        steps = num_resolution_steps(image_size)
        self.shape, self.latent_dim = (channels, image_size, image_size), latent_dim
        self.padded = PADDED_SIZES.get(image_size, image_size)
        widths = [width * 2**i for i in range(steps)]  # state size: widths[i] × (padded / 2^(i+1))²
        down, cin = [], channels
        for w in widths:
            down += [nn.Conv2d(cin, w, 4, 2, 1), nn.LeakyReLU(0.2)]
            cin = w
        self.encoder = nn.Sequential(*down, nn.Flatten())
        self.to_code = nn.Linear(widths[-1] * 16, 2 * latent_dim)  # from 4×4 to (mean, log variance)
        self.from_code = nn.Linear(latent_dim, widths[-1] * 16)
        up = []
        for w_in, w_out in zip(widths[::-1], widths[::-1][1:]):
            up += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1), nn.ReLU()]
        # the last step up yields each pixel's logistic: mean and log scale per channel
        self.decoder = nn.Sequential(*up, nn.ConvTranspose2d(widths[0], 2 * channels, 4, 2, 1))

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = images.to(self.to_code.weight.dtype) / 127.5 - 1.0
        pad = (self.padded - self.shape[1]) // 2
        if pad:
            x = F.pad(x, (pad, pad, pad, pad), value=-1.0)
        mean, log_var = self.to_code(self.encoder(x)).chunk(2, dim=1)
        return mean, log_var.clamp(-12.0, 8.0)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Each pixel's logistic: (mean in [-1, 1], log scale), both (N, C, H, W)."""
        h = self.from_code(z).view(len(z), -1, 4, 4)
        out = self.decoder(h)
        crop = (self.padded - self.shape[1]) // 2
        if crop:
            out = out[..., crop:crop + self.shape[1], crop:crop + self.shape[2]]
        mean, log_scale = out.chunk(2, dim=1)
        return torch.tanh(mean), log_scale


def negative_elbo(model: ConvVAE, images: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
    """(reconstruction, KL) in nats per image for uint8 `images`, with `noise` ~ N(0, I) the reparameterisation's
    draw: −ELBO = reconstruction + KL."""
    mean, log_var = model.encode(images)
    z = mean + torch.exp(0.5 * log_var) * noise
    pixel_mean, log_scale = model.decode(z)
    reconstruction = -discretised_logistic_log_prob(images, pixel_mean, log_scale).flatten(1).sum(dim=1)
    return reconstruction, gaussian_kl(mean, log_var)


def loss(model: ConvVAE, images: Tensor, rng: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
    """The negative ELBO in bits per dimension (the loss), with its two terms."""
    noise = torch.randn(len(images), model.latent_dim, generator=rng, device=images.device)
    reconstruction, kl = negative_elbo(model, images, noise)
    per_dim = math.log(2) * images[0].numel()
    bpd = (reconstruction + kl).mean() / per_dim
    return bpd, {"bits_per_dim": bpd.detach(), "reconstruction_bpd": reconstruction.mean().detach() / per_dim,
                 "kl_bpd": kl.mean().detach() / per_dim}


@torch.no_grad()
def bits_per_dim(model: ConvVAE, images: Tensor, rng: torch.Generator) -> Tensor:
    """The negative ELBO per image in bits per dimension: an upper bound on −log₂ p(x) / D."""
    noise = torch.randn(len(images), model.latent_dim, generator=rng, device=images.device)
    reconstruction, kl = negative_elbo(model, images, noise)
    return (reconstruction + kl) / (math.log(2) * images[0].numel())


def z_dim(model: ConvVAE) -> int:
    return model.latent_dim


@torch.no_grad()
def sample(model: ConvVAE, z: Tensor) -> Tensor:
    """The decoder's mean at each code z: images in [-1, 1]."""
    return model.decode(z)[0]
