"""A checkpoint named by a run manifest, loaded for sampling and scoring.

The manifest (training/manifest.py) is plain data: which files, which hashes, which shapes. Rebuilding a network
from it belongs here, with the stages that sample, so the contract every stage reads never imports the networks.
"""

from __future__ import annotations

import torch

from gan_assets.core.evaluation.devices import CPU
from gan_assets.core.evaluation.sampling import for_sampling
from gan_assets.core.models.families import Sampler, family_of
from gan_assets.core.models.gan.networks import Generator, MLPGenerator, build_generator
from gan_assets.core.storage import load_weights
from gan_assets.core.training.manifest import CheckpointEntry, RunManifest


def load_generator(manifest: RunManifest, entry: CheckpointEntry, sampling: str = "eval",
                   reference_z: torch.Tensor | None = None, reference_labels: torch.Tensor | None = None,
                   device: torch.device = CPU, weights: str = "ema") -> Generator | MLPGenerator | Sampler:
    """The checkpoint's generator, verified, rebuilt from `manifest`, set up for `sampling` and moved to `device`;
    for another family, its model behind the generator's sampling interface (`Sampler`: no batch norm, so
    `sampling` changes nothing). `weights` (evaluation.generator): `ema` takes G's moving average when the
    checkpoint has one (training.ema_decay), `raw` G itself."""
    if manifest.model.family != "gan":
        return Sampler(family_of(manifest.model), load_model(manifest, entry, device))
    generator = build_generator(manifest.model, manifest.shape, manifest.num_classes)
    load_weights(generator, manifest.verified_path(entry, generator_file(entry, weights)))
    # set up on the CPU, where the weights were read: reference statistics are the same whatever the device
    return for_sampling(generator.eval(), sampling, reference_z, reference_labels).to(device)


def generator_file(entry: CheckpointEntry, weights: str) -> str:
    """Which of the checkpoint's files `weights` samples: `generator_ema` for `ema` when it exists, else `generator`."""
    return "generator_ema" if weights == "ema" and entry.generator_ema is not None else "generator"


def sampled_weights(manifest: RunManifest, weights: str) -> str:
    """What `weights` samples in this run, for the record beside its scores: `ema` or `raw`."""
    return "ema" if any(generator_file(e, weights) == "generator_ema" for e in manifest.checkpoints) else "raw"


def load_model(manifest: RunManifest, entry: CheckpointEntry, device: torch.device = CPU) -> torch.nn.Module:
    """A likelihood family's model at `entry`, verified, on `device`, in eval mode (what scores test
    log-likelihood)."""
    model = family_of(manifest.model).build(manifest.model, manifest.shape)
    load_weights(model, manifest.verified_path(entry, "generator"))
    return model.to(device).eval()
