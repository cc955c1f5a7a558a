"""Drawing samples from a trained generator, with a chosen batch-norm behaviour.

A batch-norm G normalises differently at sampling time depending on its mode, and scores and
galleries depend on the choice, so it is explicit (`evaluation.sampling`) and recorded:
- `eval`: running statistics accumulated during training (the usual deployment mode);
- `train`: each generated batch's own statistics (samples of one batch depend on each other, §4.3);
- `reference`: the statistics of the fixed reference z, computed once (reference BN at sampling time).
A G built with reference or virtual BN already normalises with its reference batch in every mode.
G runs where its weights are; z is drawn by the caller (on the CPU) and moved there chunk by chunk (devices.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from gan_assets.core.config import SAMPLING_MODES
from gan_assets.core.evaluation.devices import module_device
from gan_assets.core.models.gan.networks import Generator


@torch.no_grad()
def for_sampling(generator: Generator, mode: str, reference_z: Tensor | None = None,
                 reference_labels: Tensor | None = None) -> Generator:
    """A copy of `generator` set up for `mode`; the original (and its checkpoint) is untouched."""
    if mode not in SAMPLING_MODES:
        raise ValueError(f"sampling mode {mode!r} is not one of {SAMPLING_MODES}")
    g = copy.deepcopy(generator)
    if mode == "train":
        return g.train()
    if mode == "reference":
        if reference_z is None:
            raise ValueError("sampling mode 'reference' needs the reference z")
        device, y = module_device(g), class_labels(g, len(reference_z), reference_labels)
        _set_statistics_from(g, reference_z.to(device), None if y is None else y.to(device))
    return g.eval()


def _set_statistics_from(g: Generator, z: Tensor, y: Tensor | None) -> None:
    """Running statistics := the reference batch's own (biased) batch statistics, layer by layer."""
    norms = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    counts: dict[nn.Module, int] = {}

    def count(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        counts[module] = args[0].numel() // args[0].shape[1]

    hooks = [m.register_forward_pre_hook(count) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    g.train()(z, y)
    for m, hook in zip(norms, hooks):
        hook.remove()
        n = counts[m]  # values per channel (batch × spatial): torch stores var·n/(n−1), BN used var
        m.running_var.mul_((n - 1) / n)


def class_labels(g: Generator, n: int, given: Tensor | None = None, per_row: int | None = None) -> Tensor | None:
    """Labels for a conditional G: `given`, else classes in turn (one class per row of `per_row`), made on G's
    device (the labels meet its weights there)."""
    if not g.conditional:
        return None
    if given is not None:
        return given.long()
    index = torch.arange(n, device=module_device(g))
    return (index // per_row if per_row else index) % g.num_classes


def generated_chunks(generator: Generator, z: Tensor, y: Tensor | None = None,
                     batch_size: int = 500) -> Iterator[Tensor]:
    """Images for `z`, `batch_size` at a time, on G's device (each chunk of z and y is moved there): a caller that
    drops one chunk before asking for the next holds one chunk of images at a time. A `train`-mode G
    normalises each chunk with its own statistics."""
    device = module_device(generator)
    for i, zc in enumerate(z.split(batch_size)):
        yc = None if y is None else y[i * batch_size:(i + 1) * batch_size].to(device)
        # Yielded straight from the call: a local (or torch.no_grad wrapping this generator, which keeps the
        # last value it passed on) would hold the previous chunk while G draws the next.
        yield _draw(generator, zc.to(device), yc)


@torch.no_grad()
def _draw(generator: Generator, z: Tensor, y: Tensor | None) -> Tensor:
    return generator(z, y)


def generate(generator: Generator, z: Tensor, y: Tensor | None = None, batch_size: int = 500) -> Tensor:
    """Images for `z` in chunks (`generated_chunks`), returned on z's device."""
    return torch.cat([images.to(z.device) for images in generated_chunks(generator, z, y, batch_size)])
