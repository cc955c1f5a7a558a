"""What the exported program computes, and tracing it with `torch.export`.

The pipeline's samplers (a GAN's G, a likelihood family's `Sampler`) return images in [-1, 1]; the gallery turns
them into pixels with `make_grid(normalize=True, value_range=(-1, 1))`, i.e. (clamp(x, -1, 1) + 1) / 2, then
round(· × 255) to uint8 (core/png.py). The exported program ends with that same first step, so its output is
float32 NCHW in [0, 1], the convention torchvision and PIL users expect, and round(x × 255) of it gives exactly the
gallery's pixels. A 2-D point GAN's output is its raw (N, 2) coordinates: unbounded, nothing to rescale.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

EXAMPLE_BATCH = 2  # a batch of 1 would specialise the batch dimension (torch.export treats sizes 0 and 1 as static)


def to_unit_range(images: Tensor) -> Tensor:
    """G's [-1, 1] images → [0, 1], as the gallery's make_grid normalises them (clamp first, then shift and scale)."""
    return (images.clamp(-1, 1) + 1) / 2


class UnconditionalProgram(nn.Module):
    """`program(z)` → images in [0, 1] (or points): the module torch.export traces for an unconditional sampler."""

    def __init__(self, generator: nn.Module, points: bool) -> None:
        super().__init__()
        self.generator, self.points = generator, points

    def forward(self, z: Tensor) -> Tensor:
        out = self.generator(z)
        return out if self.points else to_unit_range(out)


class ConditionalProgram(UnconditionalProgram):
    """`program(z, labels)` → images in [0, 1] (or points): a conditional G needs the class of every z."""

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:  # type: ignore[override]
        out = self.generator(z, labels)
        return out if self.points else to_unit_range(out)


def program_module(generator: nn.Module, points: bool) -> UnconditionalProgram:
    """The module to trace around a sampler set up for sampling (load_generator): its inputs are z, and labels
    when the generator is conditional."""
    kind = ConditionalProgram if getattr(generator, "conditional", False) else UnconditionalProgram
    return kind(generator, points)


def example_inputs(module: UnconditionalProgram, z_dim: int) -> tuple[Tensor, ...]:
    """Fixed example inputs (zeros): the archive stores them, so the file is the same for the same weights."""
    z = torch.zeros(EXAMPLE_BATCH, z_dim)
    return (z, torch.zeros(EXAMPLE_BATCH, dtype=torch.long)) if isinstance(module, ConditionalProgram) else (z,)


def trace(module: UnconditionalProgram, z_dim: int, strict_first: bool = False
          ) -> tuple[torch.export.ExportedProgram, str]:
    """`module` exported with a dynamic batch dimension, and how it was traced.

    Non-strict tracing (torch's default) and strict tracing (TorchDynamo), in turn: non-strict specialises the batch
    where a sampler calls `len(z)` (the VAE's and Real NVP's: Python makes an int of it), strict keeps it symbolic;
    `strict_first` tries strict first (a failed non-strict trace costs seconds). Raises both errors when neither
    traces."""
    batch = torch.export.Dim("batch", min=1)
    inputs = example_inputs(module, z_dim)
    shapes = {"z": {0: batch}, **({"labels": {0: batch}} if len(inputs) == 2 else {})}
    errors = []
    for strict in ((True, False) if strict_first else (False, True)):
        try:
            return torch.export.export(module, inputs, dynamic_shapes=shapes, strict=strict), \
                "strict" if strict else "non-strict"
        except Exception as err:  # torch.export raises many types (UserError, constraint violations, Unsupported)
            errors.append(f"{'strict' if strict else 'non-strict'}: {type(err).__name__}: {first_line(err)}")
    raise TraceError("; ".join(errors))


class TraceError(RuntimeError):
    """torch.export could not trace the sampler with a dynamic batch, strict or not."""


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
