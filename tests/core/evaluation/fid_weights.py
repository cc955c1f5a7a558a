"""Random weights in the FID Inception network's file layout: parity and plumbing need the architecture, not the
trained weights (which are never downloaded, in CI or anywhere)."""

import math
from pathlib import Path

import torch

from gan_assets.core.evaluation.metrics.fid_inception import FIDInceptionV3


def random_fid_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """He-scaled convolutions and batch norms near the identity, so the activations neither vanish nor blow up through
    the 94 layers and the pool features have a scale (~0.1-1) at which a mismatch shows."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in FIDInceptionV3().state_dict().items():
        if key.endswith("conv.weight"):
            state[key] = torch.randn(value.shape, generator=g) * math.sqrt(2 / value[0].numel())
        elif key.endswith(("bn.weight", "running_var")):
            state[key] = torch.rand(value.shape, generator=g) * 0.4 + 0.8
        elif key.endswith(("bn.bias", "running_mean")):
            state[key] = torch.rand(value.shape, generator=g) * 0.2 - 0.1
        elif value.is_floating_point():  # fc: loaded, never read by FID
            state[key] = torch.randn(value.shape, generator=g) * 0.01
        else:  # num_batches_tracked
            state[key] = value
    return state


def write_fid_weights(path: Path, seed: int = 0) -> Path:
    """A .pth file laid out as pytorch-fid's pt_inception-2015-12-05-6726825d.pth (a plain state dict)."""
    torch.save(random_fid_state(seed), path)
    return path
