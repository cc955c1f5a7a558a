"""Checkpoints a crash cannot corrupt: write one, and put a run back exactly where one left it.

Weights go to safetensors; optimiser state, the step and the RNG state go to a torch file read back only
with `weights_only=True`. Each file is written atomically (`storage`), and the entry that names them
records the sha256 of each, so a resumed run refuses a file that was replaced or corrupted.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from gan_assets.core.run import RETRAIN_HINT, CheckpointEntry, RunManifest
from gan_assets.core.storage import StoredFileError, atomic_path, file_sha256, load_weights, save_weights

if TYPE_CHECKING:
    from gan_assets.core.training_loop import GanState


def write_checkpoint(run_dir: Path, state: GanState) -> CheckpointEntry:
    """Write one checkpoint's three files; return its entry (paths relative to the run dir, with hashes)."""
    files = CheckpointEntry.file_names(state.step)
    save_weights(state.generator, run_dir / files["generator"])
    save_weights(state.discriminator, run_dir / files["discriminator"])
    with atomic_path(run_dir / files["state"]) as tmp:
        torch.save({"step": state.step, "opt_g": state.opt_g.state_dict(), "opt_d": state.opt_d.state_dict(),
                    "rng": state.rng.get_state(), "rng_device": state.rng.device.type}, tmp)
    hashes = {f"{player}_sha256": file_sha256(run_dir / name) for player, name in files.items()}
    return CheckpointEntry(step=state.step, **files, **hashes)


def restore(state: GanState, manifest: RunManifest, entry: CheckpointEntry) -> GanState:
    """Put weights, optimiser moments, RNG and step back exactly as they were at `entry`."""
    load_weights(state.generator, manifest.verified_path(entry, "generator"))
    load_weights(state.discriminator, manifest.verified_path(entry, "discriminator"))
    saved = read_training_state(manifest.verified_path(entry, "state"))
    state.opt_g.load_state_dict(saved["opt_g"])
    state.opt_d.load_state_dict(saved["opt_d"])
    state.step = int(saved["step"])
    restore_rng(state.rng, saved["rng"], saved.get("rng_device", "cpu"), state.step)
    return state


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
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise StoredFileError(f"{path} holds objects other than tensors and plain values (a pickle that could run "
                              f"code): refused; {RETRAIN_HINT}") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise StoredFileError(f"{path} is not a readable training-state file ({err}): the file is corrupted; "
                              f"{RETRAIN_HINT}") from None
