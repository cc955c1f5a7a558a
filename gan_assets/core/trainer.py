"""One experiment's training run on disk: networks built from config, checkpoints, history, manifest.

The manifest is the run's contract with everything downstream: it names each checkpoint (with the
generator's sha256), the model config that rebuilds the generator, and the loss history table.
Evaluation reads exactly the checkpoints a manifest names, never "the newest file".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

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
from gan_assets.core.networks import Discriminator, Generator, MLPDiscriminator, MLPGenerator, dcgan_init_
from gan_assets.core.norms import uses_reference
from gan_assets.core.training import (
    STAT_NAMES,
    GanState,
    TrainingCallbacks,
    TrainingData,
    model_input,
    new_state,
    resolve_device,
    train,
)

HISTORY = "history.parquet"


# §4.2: with a fake target β > 0 the optimal D peaks where p_model has spurious modes.
FAKE_LABEL_WARNING = ("training.fake_label = {beta} > 0 smooths the fake side: D* = ((1-α)p_data + β p_model) / "
                      "(p_data + p_model) then rewards G for staying where p_model already is, reinforcing "
                      "spurious modes (tutorial §4.2). Use one-sided smoothing (fake_label 0) unless you mean it.")


def build_generator(model: ModelConfig, shape: Sequence[int], num_classes: int) -> Generator | MLPGenerator:
    """The data kind picks the network: (C, H, W) images → DCGAN, (2,) points → PacGAN's MLP."""
    classes = num_classes if model.conditional else 0
    if len(shape) == 1:
        return MLPGenerator(model.z_dim, model.g_width, shape[0], model.norm, model.g_depth, classes, model.label_dim)
    channels, image_size, _ = shape
    return Generator(model.z_dim, model.g_width, channels, image_size, model.norm, model.g_depth,
                     classes, model.label_dim)


def build_discriminator(model: ModelConfig, shape: Sequence[int],
                        num_classes: int) -> Discriminator | MLPDiscriminator:
    if len(shape) == 1:
        return MLPDiscriminator(model.d_width, shape[0], model.norm, model.d_depth, num_classes,
                                model.conditional, model.auxiliary_classifier)
    channels, image_size, _ = shape
    return Discriminator(model.d_width, channels, image_size, model.norm, model.d_depth, num_classes,
                         model.conditional, model.auxiliary_classifier)


def run_key(config: ExperimentConfig, upstream: dict[str, str], code_version: str) -> str:
    """What determines a run: the sections training reads, the upstream data versions, the code."""
    payload = {"seed": config.seed, "model": config.model.model_dump(mode="json"),
               "training": config.training.model_dump(mode="json", exclude={"log_every", "device"}),
               "upstream": upstream, "code": code_version}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunInputs:
    """What a run trains on: the train split and the fixed reference batch (§4.3).

    Images are uint8 (N, C, H, W); 2-D mixtures are float32 (N, 2) points, labelled by mode, and carry
    their mode centres and std so the manifest tells downstream stages (the scatter gallery) where the modes are.
    """

    images: np.ndarray  # (N, C, H, W) uint8, or (N, 2) float32 points
    labels: np.ndarray  # (N,) class indices
    num_classes: int
    reference_images: np.ndarray  # D's reference batch, same kind as `images`
    reference_labels: np.ndarray
    reference_z: np.ndarray  # G's reference batch, float32 (N_ref, z_dim)
    modes: dict[str, Any] | None = None  # points only: {"centers": [[x, y], …], "std": s}


def _fresh_state(config: ExperimentConfig, inputs: RunInputs, device: torch.device) -> GanState:
    torch.manual_seed(config.seed)  # weight init
    shape = inputs.images.shape[1:]
    generator = build_generator(config.model, shape, inputs.num_classes)
    discriminator = build_discriminator(config.model, shape, inputs.num_classes)
    dcgan_init_(generator), dcgan_init_(discriminator)
    if uses_reference(config.model.norm):
        labels = torch.from_numpy(inputs.reference_labels)
        generator.set_reference(torch.from_numpy(inputs.reference_z), labels)
        discriminator.set_reference(model_input(torch.from_numpy(inputs.reference_images)), labels)
    generator.to(device), discriminator.to(device)
    return new_state(generator, discriminator, config.training, config.seed, device, inputs.num_classes)


def _device_data(inputs: RunInputs, device: torch.device) -> TrainingData:
    images = torch.from_numpy(inputs.images).to(device)
    if device.type == "cuda" and images.ndim == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return TrainingData(images, torch.from_numpy(inputs.labels).long().to(device))


def train_run(config: ExperimentConfig, inputs: RunInputs, run_dir: Path,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume) the run in `run_dir`; return its final manifest."""
    if config.training.fake_label > 0:
        log(FAKE_LABEL_WARNING.format(beta=config.training.fake_label))
    device = resolve_device(config.training.device)
    state = _fresh_state(config, inputs, device)
    manifest = read_manifest(run_dir) or _new_manifest(config, inputs, device)
    if manifest["checkpoints"]:
        restore(state, run_dir, manifest["checkpoints"][-1])
        log(f"resuming from step {state.step} in {run_dir}")
    history = _read_history(run_dir, state.step)
    data = _device_data(inputs, device)

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


def _new_manifest(config: ExperimentConfig, inputs: RunInputs, device: torch.device) -> dict[str, Any]:
    manifest = {"model": config.model.model_dump(mode="json"), "shape": list(inputs.images.shape[1:]),
                "num_classes": inputs.num_classes, "device": str(device), "history": HISTORY, "checkpoints": []}
    return manifest | ({"modes": inputs.modes} if inputs.modes is not None else {})


def _history_table(history: list[dict[str, float]]) -> pa.Table:
    frame = pd.DataFrame(history, columns=["step", *STAT_NAMES]).astype({"step": "int64"})
    return pa.Table.from_pandas(frame, preserve_index=False)


def _read_history(run_dir: Path, up_to_step: int) -> list[dict[str, float]]:
    path = run_dir / HISTORY
    if not path.exists():
        return []
    frame = pd.read_parquet(path)
    return frame[frame["step"] <= up_to_step].to_dict("records")


def load_generator(run_dir: Path, manifest: dict[str, Any], entry: dict[str, Any]) -> Generator | MLPGenerator:
    """The checkpoint's generator, rebuilt from the config and data shape the manifest carries, in eval mode."""
    model = ModelConfig.model_validate(manifest["model"])
    generator = build_generator(model, manifest["shape"], manifest["num_classes"])
    return load_weights(generator, run_dir / entry["generator"]).eval()


def history_frame(run_dir: Path, manifest: dict[str, Any]) -> pd.DataFrame:
    return pd.read_parquet(run_dir / manifest["history"])
