"""Checkpoints a crash cannot corrupt: write one, and put a run back exactly where one left it.

Weights go to safetensors; optimiser state, the step and the RNG state go to a torch file read back only
with `weights_only=True`. Each file is written atomically (`storage`), and the entry that names them
records the sha256 of each, so a resumed run refuses a file that was replaced or corrupted.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from gan_assets.core.storage import StoredFileError, atomic_path, file_sha256, load_weights, readable_file, save_weights
from gan_assets.core.training.manifest import RETRAIN_HINT, CheckpointEntry, RunManifest


class Checkpointable(Protocol):
    """A training state: the GAN's two players (training/loop.py) or a likelihood family's one model."""

    step: int
    rng: torch.Generator

    def players(self) -> dict[str, nn.Module]: ...  # by file: "generator" (the sampler), "discriminator"

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...  # by key in the state file


def write_checkpoint(run_dir: Path, state: Checkpointable) -> CheckpointEntry:
    """Write one checkpoint's files (each player's weights, then the state); return its entry (paths relative to
    the run dir, with hashes)."""
    files = {name: path for name, path in CheckpointEntry.file_names(state.step).items()
             if name in state.players() or name == "state"}
    for player, module in state.players().items():
        save_weights(module, run_dir / files[player])
    optimizers = {key: optimizer.state_dict() for key, optimizer in state.optimizers().items()}
    with atomic_path(run_dir / files["state"]) as tmp:
        torch.save({"step": state.step, **optimizers, "rng": state.rng.get_state(),
                    "rng_device": state.rng.device.type, **_extra_state(state)}, tmp)
    hashes = {f"{player}_sha256": file_sha256(run_dir / name) for player, name in files.items()}
    return CheckpointEntry(step=state.step, **files, **hashes)


def restore(state: Checkpointable, manifest: RunManifest, entry: CheckpointEntry) -> Checkpointable:
    """Put weights, optimiser moments, RNG and step back exactly as they were at `entry`."""
    for player, module in state.players().items():
        load_weights(module, manifest.verified_path(entry, player))
    saved = read_training_state(manifest.verified_path(entry, "state"))
    for key, optimizer in state.optimizers().items():
        optimizer.load_state_dict(saved[key])
    state.step = int(saved["step"])
    restore_rng(state.rng, saved["rng"], saved.get("rng_device", "cpu"), state.step)
    if hasattr(state, "load_extra_state"):
        state.load_extra_state(saved)
    return state


def _extra_state(state: Checkpointable) -> dict:
    """A state's own tensors beyond optimisers and RNG (ADA's p for the GAN), on the CPU so any device resumes them."""
    extra = state.extra_state() if hasattr(state, "extra_state") else {}
    return {key: tensor.detach().cpu() for key, tensor in extra.items()}


def restore_rng(rng: torch.Generator, saved: torch.Tensor, saved_device: str, step: int) -> None:
    """The saved stream where it was saved on this kind of device; else (a CPU run resumed on a GPU, or back:
    their generators are different algorithms, so one's state cannot seed the other) a stream derived from
    the run's seed and the step, so the resumed run is still reproducible on that device."""
    if saved_device == rng.device.type:
        rng.set_state(saved)
    else:
        rng.manual_seed(rng.initial_seed() * 1_000_003 + step)


def read_training_state(path: Path) -> dict:
    """The optimiser/RNG file, read with `weights_only=True`: a planted pickle is refused, never run."""
    try:
        return torch.load(readable_file(path), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise StoredFileError(f"{path} holds objects other than tensors and plain values (a pickle that could run "
                              f"code): refused; {RETRAIN_HINT}") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise StoredFileError(f"{path} is not a readable training-state file ({err}): the file is corrupted; "
                              f"{RETRAIN_HINT}") from None
