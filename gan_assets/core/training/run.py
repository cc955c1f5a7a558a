"""One experiment's training run on disk: networks built from config, checkpoints, history, manifest.

`train_run` trains or resumes the run in a directory and returns its `RunManifest` (`core/training/manifest.py`), the
contract every later stage reads. The manifest is written after each checkpoint and last, so whatever
it lists is complete; a run that goes non-finite stops with its last good checkpoint still the latest.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from gan_assets.core.config import ExperimentConfig
from gan_assets.core.models.gan.networks import build_discriminator, build_generator, dcgan_init_, model_input
from gan_assets.core.models.gan.norms import uses_reference
from gan_assets.core.runtime.device import DeviceSettings, prepare_device, release_device_memory
from gan_assets.core.runtime.threads import adapt_to_load
from gan_assets.core.storage import read_parquet, remove_stale_temps, write_parquet_atomic
from gan_assets.core.training.checkpoints import restore, write_checkpoint
from gan_assets.core.training.loop import (
    STAT_NAMES,
    GanState,
    TrainingCallbacks,
    TrainingData,
    compile_players,
    new_state,
    resolve_precision,
    train,
)
from gan_assets.core.training.manifest import HISTORY_FILE, ModeCentres, RunManifest, RunTiming
from gan_assets.core.training.observers import CheckpointEvent, ProgressClock, RunObserver, RunStart, as_observers

if TYPE_CHECKING:
    from gan_assets.core.training.distributed import DataParallel

# §4.2: with a fake target β > 0 the optimal D peaks where p_model has spurious modes.
LONG_RUN_SECONDS = 7 * 86400  # an ETA beyond a week is said as a warning once: likely a typo in training.steps
FAKE_LABEL_WARNING = ("training.fake_label = {beta} > 0 smooths the fake side: D* = ((1-α)p_data + β p_model) / "
                      "(p_data + p_model) then rewards G for staying where p_model already is, reinforcing "
                      "spurious modes (tutorial §4.2). Use one-sided smoothing (fake_label 0) unless you mean it.")


def run_key(config: ExperimentConfig, upstream: dict[str, str], code_version: str) -> str:
    """What determines a run: the sections training reads, the upstream data versions, the code."""
    payload = {"seed": config.seed, "model": config.model.model_dump(mode="json"),
               "training": config.training.model_dump(mode="json", exclude={"log_every"}),
               "upstream": upstream, "code": code_version}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class RunInputs:
    """What a run trains on: the train split and the fixed reference batch (§4.3).

    Images are uint8 (N, C, H, W); 2-D mixtures are float32 (N, 2) points, labelled by mode, and carry
    their mode centres so the manifest tells downstream stages (the scatter gallery) where the modes are.
    """

    images: np.ndarray  # (N, C, H, W) uint8, or (N, 2) float32 points
    labels: np.ndarray  # (N,) class indices
    num_classes: int
    reference_images: np.ndarray  # D's reference batch, same kind as `images`
    reference_labels: np.ndarray
    reference_z: np.ndarray  # G's reference batch, float32 (N_ref, z_dim)
    modes: ModeCentres | None = None  # points only
    class_names: tuple[str, ...] = ()


def _fresh_state(config: ExperimentConfig, inputs: RunInputs, device: torch.device) -> GanState:
    torch.manual_seed(config.seed)  # weight init
    shape = inputs.images.shape[1:]
    compute_dtype = resolve_precision(config.training.precision, device, images=len(shape) == 3)
    generator = build_generator(config.model, shape, inputs.num_classes)
    discriminator = build_discriminator(config.model, shape, inputs.num_classes)
    dcgan_init_(generator), dcgan_init_(discriminator)
    if uses_reference(config.model.norm):
        labels = torch.from_numpy(inputs.reference_labels)
        generator.set_reference(torch.from_numpy(inputs.reference_z), labels)
        discriminator.set_reference(model_input(torch.from_numpy(inputs.reference_images)), labels)
    # NHWC, the layout oneDNN and cuDNN convolve fastest (2-D points have no layout to choose)
    memory_format = torch.channels_last if len(shape) == 3 else torch.contiguous_format
    generator.to(device, memory_format=memory_format), discriminator.to(device, memory_format=memory_format)
    return new_state(generator, discriminator, config.training, config.seed, device, inputs.num_classes,
                     compute_dtype=compute_dtype)


def _device_data(inputs: RunInputs, device: torch.device) -> TrainingData:
    """The train split on `device` in one copy. Images are stored NHWC, so each minibatch reaches the convs without
    a layout copy: the host array is permuted (a view), made contiguous once on the host, and uploaded as is; a
    `.to(device)` then `.contiguous(channels_last)` would hold two copies on the card."""
    return TrainingData(device_images(inputs.images, device), torch.from_numpy(inputs.labels).long().to(device))


def device_images(images, device: torch.device) -> torch.Tensor:
    """uint8 (N, C, H, W) images on `device` in channels_last (2-D points as they are), one copy on the device."""
    host = torch.from_numpy(images)
    if host.ndim == 4:
        host = host.contiguous(memory_format=torch.channels_last)
    return host.to(device)


def train_run(config: ExperimentConfig, inputs: RunInputs, run_dir: Path, *,
              device: DeviceSettings | str | None = None, log: Callable[[str], None] = print,
              parallel: DataParallel | None = None, observer: RunObserver | None = None) -> RunManifest:
    """Train (or resume) the run in `run_dir` on `device` (settings, or a name: auto, cpu, cuda, cuda:N; None: the
    environment's, GAN_DEVICE. The deployment's choice, no part of the config or the run key); return its final
    manifest. With `parallel` this process is one rank of a data-parallel run (core/training/distributed.py): only
    rank 0 writes to `run_dir`. `observer` (core/training/observers.py) watches it live; give it on rank 0 only.
    A GPU's cached memory is released and the observer closed when the run ends, however it ends."""
    settings = DeviceSettings.of(device)
    torch_device = prepare_device(settings)
    observers = as_observers(observer, log)
    try:
        return _train_on(config, inputs, run_dir, torch_device, settings, log, parallel, observers)
    finally:
        observers.close()
        release_device_memory(torch_device)


def _train_on(config: ExperimentConfig, inputs: RunInputs, run_dir: Path, torch_device: torch.device,
              settings: DeviceSettings, log: Callable[[str], None], parallel: DataParallel | None,
              observers: RunObserver) -> RunManifest:
    if config.training.fake_label > 0:
        log(FAKE_LABEL_WARNING.format(beta=config.training.fake_label))
    adapt_to_load(torch_device.type)  # as many threads as there are CPUs free now (fixed once on a GPU)
    state = _fresh_state(config, inputs, torch_device)
    remove_stale_temps(run_dir)  # temp files of writes a killed run left behind
    manifest = RunManifest.read(run_dir) or _new_manifest(config, inputs, torch_device, run_dir)
    if manifest.checkpoints:
        restore(state, manifest, manifest.latest)
        log(f"resuming from step {state.step} in {run_dir}")
    history = read_history(run_dir, state.step)
    data = _device_data(inputs, torch_device)
    if settings.compile != "off":
        compile_players(state, settings.compile)

    def on_checkpoint(s: GanState) -> None:
        nonlocal manifest
        entry = write_checkpoint(run_dir, s)
        manifest = manifest.with_checkpoint(entry)
        write_parquet_atomic(_history_table(history), run_dir / manifest.history)
        manifest.write()  # last: whatever it lists is complete
        observers.checkpoint(CheckpointEvent(manifest, entry))

    first_step, warned = state.step, False
    clock = ProgressClock(first_step, config.training.steps)  # the one timer of the progress lines and the observers
    observers.started(RunStart(run_dir=run_dir, family=config.model.family, config=json.loads(config.model_dump_json()),
                               first_step=first_step, total_steps=config.training.steps))

    def on_progress(step: int, stats: dict[str, float]) -> None:
        nonlocal warned
        history.append(stats)
        done, left, seconds = step - first_step, config.training.steps - step, time.perf_counter() - clock.started
        log(f"step {step}/{config.training.steps} " + " ".join(f"{k} {v:.4f}" for k, v in stats.items() if k != "step")
            + progress_rate(done, left, seconds))
        observers.progress(clock.progress(step, stats))
        if not warned and done > 0 and left * seconds / done > LONG_RUN_SECONDS:
            warned = True  # a judgement, not an error: said once, with the measured ETA, and training goes on
            log(f"warning: training.steps {config.training.steps} at the measured {done / seconds:.1f} steps/s "
                f"ends in {duration(left * seconds / done)}; lower training.steps if that was not meant")

    def on_heartbeat(step: int, stats: dict[str, float]) -> None:
        observers.progress(clock.progress(step, stats, complete=False))

    callbacks = TrainingCallbacks(progress=on_progress, checkpoint=on_checkpoint,
                                  heartbeat=on_heartbeat if observers else None)
    if parallel is not None:
        callbacks = parallel.attach(state, config.training.batch_size, callbacks)
    report = train(state, data, config.training, callbacks)
    if report.steps_done and (parallel is None or parallel.is_leader):
        images_per_second = report.steps_per_second * config.training.batch_size * config.training.d_steps
        manifest = manifest.with_timing(RunTiming(steps=report.steps_done, seconds=report.seconds,
                                                  steps_per_second=report.steps_per_second,
                                                  images_per_second=images_per_second))
        manifest.write()
    observers.finished(manifest)
    return manifest


def progress_rate(done: int, left: int, seconds: float) -> str:
    """`, 27.8 steps/s, ETA 2m58s` for a progress line (empty before the first timed step)."""
    if done <= 0 or seconds <= 0:
        return ""
    rate = done / seconds
    return f", {rate:.1f} steps/s, ETA {duration(left / rate)}"


def duration(seconds: float) -> str:
    """`2m58s`, `5h07m`, `3d04h`, `1,902y`: an ETA readable at any size."""
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole < 365 * 86400:
        return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
    return f"{whole // (365 * 86400):,}y"


def _new_manifest(config: ExperimentConfig, inputs: RunInputs, device: torch.device, run_dir: Path) -> RunManifest:
    return RunManifest(run_dir=run_dir, model=config.model, shape=tuple(int(s) for s in inputs.images.shape[1:]),
                       num_classes=inputs.num_classes, device=str(device), modes=inputs.modes,
                       history=HISTORY_FILE, classes=tuple(inputs.class_names))


def _history_table(history: list[dict[str, float]]) -> pa.Table:
    frame = pd.DataFrame(history, columns=["step", *STAT_NAMES]).astype({"step": "int64"})
    return pa.Table.from_pandas(frame, preserve_index=False)


def read_history(run_dir: Path, up_to_step: int) -> list[dict[str, float]]:
    """The logged rows of `run_dir`'s history up to the step a run resumes from (any family's columns)."""
    path = run_dir / HISTORY_FILE
    if not path.exists():
        return []
    frame = read_parquet(path).to_pandas()
    return frame[frame["step"] <= up_to_step].to_dict("records")
