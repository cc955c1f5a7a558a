"""One experiment's training run on disk: networks built from config, checkpoints, history, manifest.

The manifest is the run's contract with everything downstream: it names each checkpoint (with the
generator's sha256), the model config that rebuilds the generator, and the loss history table.
Evaluation reads exactly the checkpoints a manifest names, never "the newest file".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from gan_assets.core.checkpoints import (
    MANIFEST,
    checkpoint_entry,
    load_weights,
    read_manifest,
    restore,
    write_json_atomic,
)
from gan_assets.core.config import ExperimentConfig, ModelConfig
from gan_assets.core.images import write_parquet_atomic
from gan_assets.core.networks import Discriminator, Generator, dcgan_init_
from gan_assets.core.training import (
    STAT_NAMES,
    GanState,
    TrainingCallbacks,
    new_state,
    resolve_device,
    to_signed_unit,
    train,
)

HISTORY = "history.parquet"


def build_generator(model: ModelConfig, channels: int, image_size: int) -> Generator:
    return Generator(model.z_dim, model.g_width, channels, image_size, model.norm)


def build_discriminator(model: ModelConfig, channels: int, image_size: int) -> Discriminator:
    return Discriminator(model.d_width, channels, image_size, model.norm)


def run_key(config: ExperimentConfig, upstream: dict[str, str], code_version: str) -> str:
    """What determines a run: the sections training reads, the upstream data versions, the code."""
    payload = {"seed": config.seed, "model": config.model.model_dump(mode="json"),
               "training": config.training.model_dump(mode="json", exclude={"log_every", "device"}),
               "upstream": upstream, "code": code_version}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _fresh_state(config: ExperimentConfig, shape: tuple[int, int, int], reference_real: np.ndarray,
                 reference_z: np.ndarray, device: torch.device) -> GanState:
    torch.manual_seed(config.seed)  # weight init
    channels, size, _ = shape
    generator = build_generator(config.model, channels, size)
    discriminator = build_discriminator(config.model, channels, size)
    dcgan_init_(generator), dcgan_init_(discriminator)
    if generator.norm in ("reference", "virtual"):
        generator.set_reference(torch.from_numpy(reference_z))
        discriminator.set_reference(to_signed_unit(torch.from_numpy(reference_real)))
    generator.to(device), discriminator.to(device)
    return new_state(generator, discriminator, config.training, config.seed, device)


def train_run(config: ExperimentConfig, train_images: np.ndarray, reference_real: np.ndarray,
              reference_z: np.ndarray, run_dir: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume) the run in `run_dir`; return its final manifest."""
    device = resolve_device(config.training.device)
    state = _fresh_state(config, train_images.shape[1:], reference_real, reference_z, device)
    manifest = read_manifest(run_dir) or _new_manifest(config, train_images.shape[1:], device)
    if manifest["checkpoints"]:
        restore(state, run_dir, manifest["checkpoints"][-1])
        log(f"resuming from step {state.step} in {run_dir}")
    history = _read_history(run_dir, state.step)
    data = torch.from_numpy(train_images).to(device)
    if device.type == "cuda":
        data = data.contiguous(memory_format=torch.channels_last)

    def on_checkpoint(s: GanState) -> None:
        manifest["checkpoints"].append(checkpoint_entry(run_dir, s))
        write_parquet_atomic(_history_table(history), run_dir / HISTORY)
        write_json_atomic(manifest, run_dir / MANIFEST)  # last: whatever it lists is complete

    def on_progress(step: int, stats: dict[str, float]) -> None:
        history.append(stats)
        log(f"step {step}/{config.training.steps} " + " ".join(f"{k} {v:.4f}" for k, v in stats.items() if k != "step"))

    report = train(state, data, config.training, TrainingCallbacks(progress=on_progress, checkpoint=on_checkpoint))
    if report.steps_done:
        manifest["timing"] = {"steps": report.steps_done, "seconds": report.seconds,
                              "steps_per_second": report.steps_per_second,
                              # real images D sees per second
                              "images_per_second": report.steps_per_second * config.training.batch_size
                              * config.training.d_steps}
        write_json_atomic(manifest, run_dir / MANIFEST)
    return manifest


def _new_manifest(config: ExperimentConfig, shape: tuple[int, int, int], device: torch.device) -> dict[str, Any]:
    return {"model": config.model.model_dump(mode="json"), "shape": list(shape), "device": str(device),
            "history": HISTORY, "checkpoints": []}


def _history_table(history: list[dict[str, float]]) -> pa.Table:
    frame = pd.DataFrame(history, columns=["step", *STAT_NAMES]).astype({"step": "int64"})
    return pa.Table.from_pandas(frame, preserve_index=False)


def _read_history(run_dir: Path, up_to_step: int) -> list[dict[str, float]]:
    path = run_dir / HISTORY
    if not path.exists():
        return []
    frame = pd.read_parquet(path)
    return frame[frame["step"] <= up_to_step].to_dict("records")


def load_generator(run_dir: Path, manifest: dict[str, Any], entry: dict[str, Any]) -> Generator:
    channels, size, _ = manifest["shape"]
    generator = build_generator(ModelConfig.model_validate(manifest["model"]), channels, size)
    return load_weights(generator, run_dir / entry["generator"]).eval()


def history_frame(run_dir: Path, manifest: dict[str, Any]) -> pd.DataFrame:
    return pd.read_parquet(run_dir / manifest["history"])
