"""The memory a model's settings imply, known before a weight is allocated: the networks are built on torch's
`meta` device (shapes only, no storage), so a width of 10^5 fails naming itself instead of minutes later."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gan_assets.core.config import ModelConfig
from gan_assets.core.models.families import family_of
from gan_assets.core.models.gan.networks import build_discriminator, build_generator
from gan_assets.core.runtime.memory import MemoryLimitError, check_fits_memory

BYTES_PER_PARAMETER = 16  # fp32 weight, its gradient and Adam's two moments


def parameter_count(model: ModelConfig, shape: Sequence[int], num_classes: int) -> int:
    with torch.device("meta"):
        if model.family == "gan":
            networks = [build_generator(model, shape, num_classes), build_discriminator(model, shape, num_classes)]
        else:
            networks = [family_of(model).build(model, shape)]
    return sum(p.numel() for network in networks for p in network.parameters())


def check_model_fits_memory(model: ModelConfig, shape: Sequence[int], num_classes: int) -> None:
    try:
        count = parameter_count(model, shape, num_classes)
    except (OverflowError, RuntimeError, TypeError) as err:  # torch's size arithmetic overflowed: far beyond memory
        raise MemoryLimitError(f"the model section (widths, depths, z_dim) gives tensors too large to size ({err})"
                               ) from None
    check_fits_memory(count * BYTES_PER_PARAMETER, f"the model section ({count:,} parameters: widths, depths, z_dim)")
