"""Checkpoints a crash cannot corrupt, and the manifest that names them.

Weights go to safetensors (no pickle: loading one cannot run code). Optimiser state, the step and the
RNG state go to a torch file read back only with `weights_only=True`. Every file is written to a temp
name, fsynced and renamed; the manifest is written last, so whatever it lists is complete. A run
directory is keyed by what determines the run (config, upstream data versions, code version), not by
a Dagster run id, so a retried run finds its checkpoints and resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gan_assets.core.training import GanState

MANIFEST = "manifest.json"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_json_atomic(payload: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(module: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_weights(module: nn.Module, path: Path) -> nn.Module:
    tensors = load_file(str(path))
    if "reference" in tensors and getattr(module, "reference", False) is None:
        # the fixed reference batch (and its classes) travels with the weights
        module.set_reference(tensors["reference"], tensors.get("reference_labels"))
    module.load_state_dict(tensors)
    return module


def checkpoint_entry(run_dir: Path, state: GanState) -> dict[str, Any]:
    """Write one checkpoint's three files; return its manifest entry (paths relative to the run dir)."""
    stem = f"step_{state.step:06d}"
    files = {"generator": f"{stem}.generator.safetensors", "discriminator": f"{stem}.discriminator.safetensors",
             "state": f"{stem}.state.pt"}
    save_weights(state.generator, run_dir / files["generator"])
    save_weights(state.discriminator, run_dir / files["discriminator"])
    with atomic_path(run_dir / files["state"]) as tmp:
        torch.save({"step": state.step, "opt_g": state.opt_g.state_dict(), "opt_d": state.opt_d.state_dict(),
                    "rng": state.rng.get_state()}, tmp)
    return {"step": state.step, **files, "generator_sha256": file_sha256(run_dir / files["generator"])}


def restore(state: GanState, run_dir: Path, entry: dict[str, Any]) -> GanState:
    """Put weights, optimiser moments, RNG and step back exactly as they were at `entry`."""
    load_weights(state.generator, run_dir / entry["generator"])
    load_weights(state.discriminator, run_dir / entry["discriminator"])
    saved = torch.load(run_dir / entry["state"], weights_only=True, map_location="cpu")
    state.opt_g.load_state_dict(saved["opt_g"])
    state.opt_d.load_state_dict(saved["opt_d"])
    state.rng.set_state(saved["rng"])
    state.step = int(saved["step"])
    return state


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None
