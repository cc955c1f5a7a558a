"""One likelihood family's training run on disk: the same contract as the GAN's (`core/training/manifest.py`).

Adam on the family's loss (bits per dimension of minibatches drawn with the run's seeded generator),
checkpoints every `training.checkpoint_every` steps with the sha256 of each file in the manifest, the history
of logged stats, and an exact resume (weights, Adam moments, RNG state, step). A checkpoint has two files: the
model (stored under `generator`, the network that draws samples) and the optimiser/RNG state; no discriminator.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow as pa
import torch
from torch import Tensor, nn

from gan_assets.core.config import ExperimentConfig, TrainingConfig
from gan_assets.core.models.families import Family, family_of
from gan_assets.core.runtime.device import DeviceSettings, prepare_device, release_device_memory
from gan_assets.core.runtime.threads import LoadFollower, adapt_to_load
from gan_assets.core.storage import (
    remove_stale_temps,
    write_parquet_atomic,
)
from gan_assets.core.training.checkpoints import restore, write_checkpoint
from gan_assets.core.training.loop import Heartbeat, TrainingCallbacks, TrainingReport
from gan_assets.core.training.manifest import HISTORY_FILE, RunManifest, RunTiming
from gan_assets.core.training.observers import CheckpointEvent, ProgressClock, RunObserver, RunStart, as_observers
from gan_assets.core.training.run import RunInputs, progress_rate, read_history, train_run


class NonFiniteLikelihood(FloatingPointError):
    def __init__(self, step: int, family: str, what: str) -> None:
        super().__init__(f"training stopped at step {step}: the {family} model's {what} is not finite (NaN or inf); "
                         f"the last checkpoint before it stays the latest. Lower model.{family}.lr or check the data.")
        self.step = step


@dataclass
class LikelihoodState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    rng: torch.Generator
    step: int = 0

    def players(self) -> dict[str, nn.Module]:
        return {"generator": self.model}  # the network that draws samples, under the GAN's file name

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}


def new_likelihood_state(config: ExperimentConfig, shape: tuple[int, ...], device: torch.device) -> LikelihoodState:
    family = family_of(config.model)
    torch.manual_seed(config.seed)  # weight init
    model = family.build(config.model, shape).to(device)
    rng = torch.Generator(device=device)
    rng.manual_seed(config.seed)
    return LikelihoodState(model, torch.optim.Adam(model.parameters(), lr=family.lr(config.model)), rng)


def train_steps(state: LikelihoodState, images: Tensor, family: Family, config: TrainingConfig,
                progress: Callable[[int, dict[str, float]], None],
                checkpoint: Callable[[LikelihoodState], None],
                heartbeat: Callable[[int, dict[str, float]], None] | None = None) -> TrainingReport:
    """From `state.step` to `config.steps` on uint8 `images` resident on the device: a minibatch drawn with the
    run's generator, one Adam step on the family's loss; stats averaged over each logging window (and the window
    so far passed to `heartbeat` when a window outlasts the loop's heartbeat interval)."""
    state.model.train()
    start, first_step = time.perf_counter(), state.step
    report = TrainingReport(0, 0.0)
    window = torch.zeros(len(family.stat_names), device=images.device)
    window_steps = 0
    follow_load = LoadFollower() if images.device.type == "cpu" else (lambda: None)  # core/runtime/threads.py
    beats = Heartbeat(TrainingCallbacks(heartbeat=heartbeat), family.stat_names)
    while state.step < config.steps:
        follow_load()
        index = torch.randint(len(images), (config.batch_size,), generator=state.rng, device=images.device)
        loss, stats = family.loss(state.model, images[index], state.rng)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        window += torch.stack([stats[name] for name in family.stat_names])
        state.step, window_steps = state.step + 1, window_steps + 1
        if state.step % config.log_every == 0 or state.step == config.steps:
            means = (window / window_steps).tolist()  # the one host sync per logging window
            window.zero_(), report.history.append({"step": state.step, **dict(zip(family.stat_names, means))})
            window_steps = 0
            check_model_finite(state, family, report.history[-1])
            progress(state.step, report.history[-1])
            beats.reset()
        else:
            beats.beat_if_due(state.step, window, window_steps)
        if state.step % config.checkpoint_every == 0 or state.step == config.steps:
            check_model_finite(state, family, None)
            checkpoint(state)
    report.steps_done, report.seconds = state.step - first_step, time.perf_counter() - start
    return report


def check_model_finite(state: LikelihoodState, family: Family, stats: dict[str, float] | None) -> None:
    if stats is not None and not all(math.isfinite(v) for v in stats.values()):
        raise NonFiniteLikelihood(state.step, family.name, "loss")
    if not all(bool(p.isfinite().all()) for p in state.model.parameters()):
        raise NonFiniteLikelihood(state.step, family.name, "weights")


def train_family_run(config: ExperimentConfig, inputs: RunInputs, run_dir: Path, *,
                     device: DeviceSettings | str | None = None, log: Callable[[str], None] = print,
                     observer: RunObserver | None = None) -> RunManifest:
    """The run of `model.family`: the GAN's (`training_run.train_run`) or a likelihood family's, same contract."""
    train = train_run if config.model.family == "gan" else train_likelihood_run
    return train(config, inputs, run_dir, device=device, log=log, observer=observer)


def train_likelihood_run(config: ExperimentConfig, inputs: RunInputs, run_dir: Path, *,
                         device: DeviceSettings | str | None = None, log: Callable[[str], None] = print,
                         observer: RunObserver | None = None) -> RunManifest:
    """Train (or resume) a likelihood family's run in `run_dir` on `device` (as `train_run` takes it); return its
    final manifest. A GPU's cached memory is released and `observer` closed when the run ends."""
    torch_device = prepare_device(device)
    observers = as_observers(observer, log)
    try:
        return _train_likelihood_on(config, inputs, run_dir, torch_device, log, observers)
    finally:
        observers.close()
        release_device_memory(torch_device)


def _train_likelihood_on(config: ExperimentConfig, inputs: RunInputs, run_dir: Path, torch_device: torch.device,
                         log: Callable[[str], None], observers: RunObserver) -> RunManifest:
    adapt_to_load(torch_device.type)
    family = family_of(config.model)
    shape = tuple(int(s) for s in inputs.images.shape[1:])
    state = new_likelihood_state(config, shape, torch_device)
    remove_stale_temps(run_dir)
    manifest = RunManifest.read(run_dir) or RunManifest(
        run_dir=run_dir, model=config.model, shape=shape, num_classes=inputs.num_classes, device=str(torch_device),
        history=HISTORY_FILE, classes=tuple(inputs.class_names))
    if manifest.checkpoints:
        restore(state, manifest, manifest.latest)
        log(f"resuming from step {state.step} in {run_dir}")
    history = read_history(run_dir, state.step)
    first_step = state.step

    clock = ProgressClock(first_step, config.training.steps)
    observers.started(RunStart(run_dir=run_dir, family=family.name, config=json.loads(config.model_dump_json()),
                               first_step=first_step, total_steps=config.training.steps))

    def on_checkpoint(s: LikelihoodState) -> None:
        nonlocal manifest
        entry = write_checkpoint(run_dir, s)
        manifest = manifest.with_checkpoint(entry)
        frame = pd.DataFrame(history, columns=["step", *family.stat_names]).astype({"step": "int64"})
        write_parquet_atomic(pa.Table.from_pandas(frame, preserve_index=False), run_dir / manifest.history)
        manifest.write()  # last: whatever it lists is complete
        observers.checkpoint(CheckpointEvent(manifest, entry))

    def on_progress(step: int, stats: dict[str, float]) -> None:
        history.append(stats)
        log(f"step {step}/{config.training.steps} [{family.name}] "
            + " ".join(f"{k} {v:.4f}" for k, v in stats.items() if k != "step")
            + progress_rate(step - first_step, config.training.steps - step, time.perf_counter() - clock.started))
        observers.progress(clock.progress(step, stats))

    def on_heartbeat(step: int, stats: dict[str, float]) -> None:
        observers.progress(clock.progress(step, stats, complete=False))

    images = torch.from_numpy(inputs.images).to(torch_device)
    report = train_steps(state, images, family, config.training, on_progress, on_checkpoint,
                         heartbeat=on_heartbeat if observers else None)
    if report.steps_done:
        manifest = manifest.with_timing(RunTiming(
            steps=report.steps_done, seconds=report.seconds, steps_per_second=report.steps_per_second,
            images_per_second=report.steps_per_second * config.training.batch_size))
        manifest.write()
    observers.finished(manifest)
    return manifest

