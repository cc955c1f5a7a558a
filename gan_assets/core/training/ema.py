"""G_ema: an exponential moving average of the generator's weights (beyond the tutorial).

Karras et al. 2018 (Progressive GAN) sample from a running average of G's weights: the average smooths out the
oscillation of the two-player game, so its samples are usually better than the last G's (Yazıcı et al. 2019,
"The Unusual Effectiveness of Averaging in GAN Training", measure it). After each G step
    θ_ema ← β_t θ_ema + (1 − β_t) θ,   β_t = min(β, (1 + t) / (10 + t)),
the warm-up of TensorFlow's ExponentialMovingAverage(num_updates): early on, when G moves fast and the average would
mostly remember its random start, β_t is small. Batch-norm running statistics are copied, not averaged (they are
statistics of G's current activations, as in StyleGAN2's ema). The average is a full generator: it is saved beside G
in every checkpoint (file `generator_ema`), resumed exactly, and what scores and galleries sample by default.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(decay: float, step: int) -> float:
    """β_t for the update after G step `step` (1-based)."""
    return min(decay, (1.0 + step) / (10.0 + step))


def new_ema(generator: nn.Module) -> nn.Module:
    """A frozen copy of `generator` to average into (same device and memory layout)."""
    ema = copy.deepcopy(generator).eval()
    for param in ema.parameters():
        param.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, generator: nn.Module, decay: float, step: int) -> None:
    """One moving-average step after G step `step`: parameters averaged, buffers copied."""
    beta = ema_decay_at(decay, step)
    ema_params, params = list(ema.parameters()), list(generator.parameters())
    torch._foreach_lerp_(ema_params, params, 1.0 - beta)  # θ_ema + (1−β)(θ − θ_ema): one kernel for all tensors
    for ema_buffer, buffer in zip(ema.buffers(), generator.buffers()):
        ema_buffer.copy_(buffer)
