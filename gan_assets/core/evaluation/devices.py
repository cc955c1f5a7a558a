"""Where evaluation's tensors live: one placement rule for scoring, the evaluator and the gallery.

- A network runs where its weights are (`module_device`); a helper that runs one moves each input chunk there
  and hands its answer back on the device the input came from, so a CPU caller never sees a GPU tensor.
- Labels and constants are created on the device of the tensors they meet.
- Random draws that fix a result (the z of scores and galleries) come from CPU generators and are then moved:
  the same z on every device, whatever its random number generator.
- Metrics see one device: `compute_metrics` moves the real evidence and the context to the samples' device.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import nn

from gan_assets.core.runtime.device import release_device_memory

CPU = torch.device("cpu")

M = TypeVar("M", bound=nn.Module)


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's weights (its first parameter or buffer); the CPU for a module with none."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return CPU


def placed(module: M, device: torch.device) -> M:
    """`module` on `device`: itself when it is there, else a moved copy (the caller's module stays where it was)."""
    if module_device(module) == torch.empty(0, device=device).device:  # "cuda" as the tensors spell it: cuda:0
        return module
    return copy.deepcopy(module).to(device)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (CUDA runs asynchronously: a timer must wait for it)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def released(device: torch.device) -> Iterator[torch.device]:
    """`device` for a stage's work; when the work ends, however it ends, its cached GPU memory goes back to the
    driver, so the next stage (or another process's training) finds the card empty."""
    try:
        yield device
    finally:
        release_device_memory(device)
