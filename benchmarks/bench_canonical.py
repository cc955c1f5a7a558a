"""Our trainer's throughput beside the canonical pytorch/examples DCGAN loop, measured side by side.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_canonical.py [--config all] [--device auto]
      [--rounds N] [--window-seconds S] [--threads T]
      OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_canonical.py --busy [--busy-seconds 10]
      GAN_DETERMINISTIC=0 GAN_COMPILE=reduce-overhead … --device cuda: ours with autotuned kernels and CUDA graphs

Three contenders train the same networks (gan_assets' DCGAN G and D, DCGAN init) on the same random
uint8 images, with the same batch size and the same number of steps per timed window:

- canonical: the loop of pytorch/examples' dcgan/main.py as users write it: a torchvision-style Dataset
  (PIL image -> ToTensor -> Normalize(0.5, 0.5) per sample), a DataLoader, D ending in a Sigmoid with
  nn.BCELoss, and `.item()` on the printed statistics every iteration;
- in_memory: the same loop on a float tensor in [-1, 1] already on the device (the honest compute baseline);
- ours: `gan_assets.core.training.loop.train` on the state and data `gan_assets.core.training.run` builds,
  exactly as the `gan_checkpoints` asset runs it.

The machine is assumed noisy and shared, so only ratios measured side by side count: after a warm-up the
contenders run short timed windows in turn (canonical, in_memory, ours, canonical, ...), all of a round's
windows the same number of steps, sized so the slowest contender takes about --window-seconds. Images/s is
real images D sees per second (batch_size x d_steps x steps / seconds), reported as the median over windows;
`ratio` and `ratio_in_memory` are medians of the per-round ratios (each round's windows are adjacent in
time, so a slow spell of the VM hits both sides of a ratio alike). One JSON line per configuration goes to
stdout, last; progress goes to stderr.

`--busy` measures instead how ours degrades when it shares the CPUs: quiet, beside one CPU-bound process
per core started by this script, and as one of two trainings at once (each training is a subprocess of this
script). The burners run in one of three places, since the kernel's autogroup scheduling shares the CPUs
between sessions first (`burner_session`): `same` (this script's session), `other` (all in one other session,
as one other shell, or one other process spinning on every core), `separate` (each in a session of its own,
as two other shells).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torchvision import transforms  # noqa: E402

from gan_assets.core.config import ExperimentConfig, load_experiment, parse_experiment  # noqa: E402
from gan_assets.core.models.gan.networks import build_discriminator, build_generator, dcgan_init_  # noqa: E402
from gan_assets.core.runtime import threads as thread_helpers  # noqa: E402
from gan_assets.core.runtime.device import DeviceSettings, prepare_device  # noqa: E402
from gan_assets.core.training.loop import TrainingCallbacks, compile_players, train  # noqa: E402
from gan_assets.core.training.run import RunInputs, _device_data, _fresh_state  # noqa: E402

SETTINGS = DeviceSettings("cpu")  # main() sets the run's: device, deterministic kernels, compile mode
DEFAULT_EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "digits-dcgan.yaml"
NUM_IMAGES = 4096  # random uint8 images every contender trains on
NUM_CLASSES = 10  # labels arange(N) % 10 (the networks are unconditional: only D's constructor sees it)
DATA_SEED = 0
PEAK_MATMUL_SIDE = {"cpu": 2048, "cuda": 8192}  # a 2048² matmul is too small to fill a big GPU
PEAK_RUN_SECONDS = 0.05  # a product this long is big enough to time
PEAK_REPEATS, PEAK_SECONDS = 5, 1.0  # best of: the peak is what the hardware can do, not what a neighbour left


@dataclass(frozen=True)
class BenchConfig:
    name: str
    image_size: int
    channels: int
    batch_size: int
    width: int  # g_width = d_width
    rounds: int  # timed windows per contender
    window_seconds: float  # target length of the slowest contender's window (steps re-sized every round)
    calibration_steps: int  # timed single steps per contender after its warm-up, to size the windows


# Defaults sized so `--config all` stays under ~6 minutes on 2 CPU cores: one 64x64x3 step is ~50x the FLOPs.
CONFIGS = {c.name: c for c in (
    BenchConfig("32x32x1-b64-w32", image_size=32, channels=1, batch_size=64, width=32,
                rounds=6, window_seconds=2.5, calibration_steps=10),
    BenchConfig("64x64x3-b128-w64", image_size=64, channels=3, batch_size=128, width=64,
                rounds=4, window_seconds=6.0, calibration_steps=3),
)}
DEFAULT_CONFIG = "32x32x1-b64-w32"  # the default experiment's shape: the one --busy measures


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a timer read after it has seen all of it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------- setup


def experiment_for(bench: BenchConfig) -> ExperimentConfig:
    """The default experiment with only the shape, widths and batch size replaced, and no labels, re-validated (the
    device is no part of an experiment: each contender is given it)."""
    raw = load_experiment(DEFAULT_EXPERIMENT).model_dump(mode="json")
    raw["dataset"].update(image_size=bench.image_size, channels=bench.channels)
    # z_dim stays the experiment's 100; unconditional, as the canonical DCGAN is (the default experiment uses labels)
    raw["model"].update(g_width=bench.width, d_width=bench.width, conditional=False, auxiliary_classifier=False)
    raw["training"].update(batch_size=bench.batch_size)
    return parse_experiment(raw, origin=f"{DEFAULT_EXPERIMENT} + {bench.name}")


def random_images(bench: BenchConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) uint8 images from a fixed seed, and labels arange(N) % 10."""
    rng = np.random.default_rng(DATA_SEED)
    shape = (NUM_IMAGES, bench.channels, bench.image_size, bench.image_size)
    return rng.integers(0, 256, shape, dtype=np.uint8), np.arange(NUM_IMAGES, dtype=np.int64) % NUM_CLASSES


def run_inputs(config: ExperimentConfig, images: np.ndarray, labels: np.ndarray) -> RunInputs:
    """What the gan_checkpoints asset hands train_run; the reference batch is unused by batch norm."""
    size = config.reference_batch.size
    reference_z = np.random.default_rng(DATA_SEED).standard_normal((size, config.model.z_dim)).astype(np.float32)
    return RunInputs(images=images, labels=labels, num_classes=NUM_CLASSES, reference_images=images[:size],
                     reference_labels=labels[:size], reference_z=reference_z)


def our_networks(config: ExperimentConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """G and D as training_run builds them (same seed, same init), for the contenders that are not ours."""
    torch.manual_seed(config.seed)
    generator = build_generator(config.model, shape, NUM_CLASSES)
    discriminator = build_discriminator(config.model, shape, NUM_CLASSES)
    dcgan_init_(generator), dcgan_init_(discriminator)
    return generator, discriminator


# ------------------------------------------------------------------------------------------ contenders


class Contender(Protocol):
    name: str

    def run(self, steps: int) -> None:
        """Exactly `steps` training steps; returns with the device's work done or queued (caller syncs)."""


class SigmoidDiscriminator(nn.Module):
    """The example's netD ends in nn.Sigmoid; ours returns logits, so wrap it."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.discriminator.logits(self.discriminator.features(x)))


class ExampleLoop:
    """One iteration of pytorch/examples dcgan/main.py, line for line (its G takes z as (N, nz); ours (N, z_dim))."""

    def __init__(self, config: ExperimentConfig, shape: tuple[int, ...], device: torch.device) -> None:
        generator, discriminator = our_networks(config, shape)
        self.netG, self.netD = generator.to(device), SigmoidDiscriminator(discriminator).to(device)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.nz, self.device = config.model.z_dim, device
        self.real_label, self.fake_label = 1.0, 0.0

    def step(self, real_cpu: Tensor) -> tuple[float, ...]:
        netD, netG, criterion, device = self.netD, self.netG, self.criterion, self.device
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        real = real_cpu.to(device)
        batch_size = real.size(0)
        label = torch.full((batch_size,), self.real_label, dtype=real.dtype, device=device)
        output = netD(real)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(batch_size, self.nz, device=device)
        fake = netG(noise)
        label.fill_(self.fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        self.optimizerD.step()
        # (2) Update G network: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(self.real_label)  # fake labels are real for generator cost
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        self.optimizerG.step()
        return errD.item(), errG.item(), D_x, D_G_z1, D_G_z2  # what the example prints every iteration


class UInt8ImageDataset(Dataset):
    """A torchvision-style dataset (like datasets.CIFAR10 / MNIST): HWC uint8 -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable) -> None:
        hwc = images.transpose(0, 2, 3, 1)
        self.images = hwc[..., 0] if hwc.shape[-1] == 1 else hwc  # grey: (H, W), PIL mode "L" like MNIST
        self.labels, self.transform = labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


class Canonical:
    name = "canonical"

    def __init__(self, config: ExperimentConfig, images: np.ndarray, labels: np.ndarray, device: torch.device) -> None:
        channels = images.shape[1]
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * channels, (0.5,) * channels)])
        torch.manual_seed(config.seed)  # the loader's shuffle
        loader = DataLoader(UInt8ImageDataset(images, labels, transform), batch_size=config.training.batch_size,
                            shuffle=True, num_workers=0, drop_last=True)
        self.loop, self.batches = ExampleLoop(config, images.shape[1:], device), self._epochs(loader)

    @staticmethod
    def _epochs(loader: DataLoader) -> Iterator[Tensor]:
        """Batches forever, epoch after epoch (the example's `for epoch ...: for i, data in enumerate(loader)`)."""
        while True:
            for images, _labels in loader:
                yield images

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.loop.step(next(self.batches))


class InMemory:
    name = "in_memory"

    def __init__(self, config: ExperimentConfig, images: np.ndarray, device: torch.device) -> None:
        # ToTensor then Normalize(0.5, 0.5), done once for the whole set: x / 255 * 2 - 1
        self.images = torch.from_numpy(images).to(device).float().div_(255).sub_(0.5).div_(0.5)
        self.batch_size, self.device = config.training.batch_size, device
        self.rng = torch.Generator(device=device)
        self.rng.manual_seed(config.seed)
        self.loop = ExampleLoop(config, images.shape[1:], device)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            index = torch.randint(len(self.images), (self.batch_size,), device=self.device, generator=self.rng)
            self.loop.step(self.images[index])


class Ours:
    name = "ours"

    def __init__(self, config: ExperimentConfig, inputs: RunInputs, device: torch.device) -> None:
        self.state = _fresh_state(config, inputs, device)
        self.data = _device_data(inputs, device)
        self.training = config.training
        if SETTINGS.compile != "off":  # GAN_COMPILE, as train_run applies it
            compile_players(self.state, SETTINGS.compile)

    def run(self, steps: int) -> None:
        # train() runs from state.step to `steps`; no checkpoint inside a window (log_every stays the experiment's)
        window = self.training.model_copy(update={"steps": self.state.step + steps, "checkpoint_every": 10**9})
        train(self.state, self.data, window, TrainingCallbacks())


def timed_run(contender: Contender, steps: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    contender.run(steps)
    synchronize(device)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------- FLOPs
# A Conv2d / ConvTranspose2d / Linear costs 2 FLOPs per multiply-add. Backward is the standard "2x forward",
# counted as its two halves, each as many multiply-adds as the forward: the input gradient (dL/dx) and the
# weight gradient (dL/dW). Each half is counted only where the step computes it: the first layer of a network
# needs no input gradient when nothing upstream wants one (z, real images, detached fakes), and autograd skips
# D's weight gradients when ours takes G's gradients alone (torch.autograd.grad over G's parameters).
# Norms, activations, losses and Adam are not counted (memory-bound, a few % of the FLOPs).


@dataclass(frozen=True)
class NetworkCost:
    """FLOPs per image of one network's passes, from the shapes of one real forward pass."""

    forward: float
    first_layer: float  # the layer that reads the network's input

    @property
    def weight_grads(self) -> float:
        return self.forward

    def input_grads(self, to_network_input: bool) -> float:
        return self.forward if to_network_input else self.forward - self.first_layer


def _multiply_adds(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    """Multiply-adds of one call, from the actual shapes (whole batch)."""
    weight = module.weight
    if isinstance(module, nn.ConvTranspose2d):  # each input pixel scatters a C_out x kH x kW patch
        x = inputs[0]
        return x.shape[0] * x.shape[2] * x.shape[3] * weight.numel()
    if isinstance(module, nn.Conv2d):  # each output pixel gathers a C_in x kH x kW patch
        return output.shape[0] * output.shape[2] * output.shape[3] * weight.numel()
    return output.numel() // output.shape[-1] * weight.numel()  # Linear: rows x in x out


def network_cost(network: nn.Module, forward: Callable[[], Tensor], batch: int) -> NetworkCost:
    """Hook every Conv2d / ConvTranspose2d / Linear and run one forward pass; layers come in call order."""
    calls: list[int] = []
    layers = [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    handles = [m.register_forward_hook(lambda m, i, o: calls.append(_multiply_adds(m, i, o))) for m in layers]
    try:
        with torch.no_grad():
            forward()
    finally:
        for handle in handles:
            handle.remove()
    flops = [2.0 * macs / batch for macs in calls]
    return NetworkCost(forward=sum(flops), first_layer=flops[0])


def network_costs(config: ExperimentConfig, shape: tuple[int, ...]) -> tuple[NetworkCost, NetworkCost]:
    generator, discriminator = our_networks(config, shape)  # fresh copies: their BN statistics don't matter
    batch = 2  # batch norm in train mode needs two; costs are per image
    z = torch.randn(batch, config.model.z_dim)
    g = network_cost(generator, lambda: generator(z), batch)
    x = torch.zeros(batch, *shape)
    d = network_cost(discriminator, lambda: discriminator.logits(discriminator.features(x)), batch)
    return g, d


def ours_flops_per_image(g: NetworkCost, d: NetworkCost, d_steps: int) -> float:
    """training.loop.alternating_step as it reads now: each of the d_steps D updates makes its fakes with one G
    forward (the last keeps the graph), and the G update reuses the last D update's fakes; per real image."""
    d_on_data = d.forward + d.weight_grads + d.input_grads(False)  # real, and fakes detached
    d_update = g.forward + 2 * d_on_data  # G(z), D on real, D on fake
    # D(G(z)) on the kept fakes, then autograd.grad over G's parameters: through D's inputs only (no D weight
    # gradients), G's weights and G's inner inputs
    g_update = d.forward + d.input_grads(True) + g.weight_grads + g.input_grads(False)
    return (d_steps * d_update + g_update) / d_steps


def example_flops_per_image(g: NetworkCost, d: NetworkCost) -> float:
    """The example's iteration: one G(z) reused; errG.backward() also computes D's weight gradients."""
    d_on_data = d.forward + d.weight_grads + d.input_grads(False)  # real, and fake.detach()
    g_step = d.forward + d.weight_grads + d.input_grads(True) + g.weight_grads + g.input_grads(False)
    return g.forward + 2 * d_on_data + g_step


def probe_ours(ours: Ours, batch_real_images: int) -> tuple[float, str]:
    """One real step of ours under torch's FLOP counter (a cross-check of the count above, whatever path the
    trainer takes), recording the dtype its convolutions compute in (the precision it trains in)."""
    dtypes: set[str] = set()
    layers = [m for net in (ours.state.generator, ours.state.discriminator) for m in net.modules()
              if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    handles = [m.register_forward_hook(lambda m, i, o: dtypes.add(str(o.dtype).removeprefix("torch."))) for m in layers]
    try:
        with FlopCounterMode(display=False) as counter:
            ours.run(1)
    finally:
        for handle in handles:
            handle.remove()
    return counter.get_total_flops() / batch_real_images, "+".join(sorted(dtypes))


# ------------------------------------------------------------------------------------------- peaks


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype) -> float:
    """Best-of GFLOP/s of a square matmul in `dtype` on `device`, over PEAK_REPEATS runs and PEAK_SECONDS at least.

    The side grows from 256 while one product takes under PEAK_RUN_SECONDS, up to PEAK_MATMUL_SIDE: a CPU
    without bf16 units emulates bf16 at well under 1 GFLOP/s, where a full-size product would take minutes.
    """
    side = 256
    while True:
        a, b = (torch.randn(side, side, device=device).to(dtype) for _ in range(2))
        a @ b  # warm-up: kernel choice, packing buffers
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        if side >= PEAK_MATMUL_SIDE[device.type] or time.perf_counter() - start > PEAK_RUN_SECONDS:
            break
        side *= 2
    best, runs, started = float("inf"), 0, time.perf_counter()
    while runs < PEAK_REPEATS or time.perf_counter() - started < PEAK_SECONDS:
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best, runs = min(best, time.perf_counter() - start), runs + 1
    return 2 * side**3 / best / 1e9


def matmul_peaks(device: torch.device, earlier: dict[str, float] | None = None) -> dict[str, float]:
    """fp32 and bf16 peaks; with `earlier`, the better of both measurements (a peak spoiled by a neighbour
    would inflate every peak_fraction)."""
    peaks = {"fp32": matmul_peak_gflops(device, torch.float32), "bf16": matmul_peak_gflops(device, torch.bfloat16)}
    return {k: max(v, (earlier or {}).get(k, 0.0)) for k, v in peaks.items()}


# ----------------------------------------------------------------------------------------- benchmark


def single_step_seconds(contender: Contender, bench: BenchConfig, device: torch.device) -> list[float]:
    """One untimed step (first calls choose kernels and fill caches), then timed single steps, up to
    `calibration_steps` of them or `window_seconds` in all."""
    contender.run(1)
    times: list[float] = []
    while len(times) < bench.calibration_steps and sum(times) < bench.window_seconds:
        times.append(timed_run(contender, 1, device))
    return times


def steps_per_window(step_seconds: dict[str, list[float]], window_seconds: float) -> int:
    """Steps that fit the slowest contender's median step into one window: all contenders run the same steps,
    and none runs much past the target. Medians, because one burst of a neighbour's work would skew a mean."""
    return max(1, round(window_seconds / max(statistics.median(times) for times in step_seconds.values())))


def interleaved_windows(contenders: list[Contender], bench: BenchConfig, images_per_step: int,
                        device: torch.device) -> tuple[dict[str, list[float]], list[int]]:
    """Images/s of each contender's windows, run in turn round after round, and each round's steps. The steps
    are re-sized after every round from all the step times seen so far, so a warm-up spoiled by noise only
    spoils the first round's length."""
    step_seconds: dict[str, list[float]] = {}
    for contender in contenders:
        step_seconds[contender.name] = single_step_seconds(contender, bench, device)
        log(f"  warm-up {contender.name}: {bench.batch_size / statistics.median(step_seconds[contender.name]):.0f} img/s")
    windows: dict[str, list[float]] = {c.name: [] for c in contenders}
    round_steps: list[int] = []
    for round_index in range(bench.rounds):
        steps = steps_per_window(step_seconds, bench.window_seconds)
        for contender in contenders:
            seconds = timed_run(contender, steps, device)
            step_seconds[contender.name].append(seconds / steps)
            windows[contender.name].append(images_per_step * steps / seconds)
        round_steps.append(steps)
        log(f"  round {round_index + 1}/{bench.rounds}, {steps} steps: "
            + ", ".join(f"{name} {values[-1]:.0f}" for name, values in windows.items()) + " img/s")
    return windows, round_steps


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    return statistics.median(n / d for n, d in zip(numerator, denominator))


def bench_config(bench: BenchConfig, device: torch.device) -> dict:
    """Everything of one configuration's JSON line but the peak keys (with_peaks adds them)."""
    config = experiment_for(bench)
    if config.training.update != "alternating":
        raise SystemExit(f"the FLOP count follows the alternating step; the experiment uses {config.training.update!r}")
    images, labels = random_images(bench)
    shape = images.shape[1:]
    images_per_step = config.training.batch_size * config.training.d_steps
    g_cost, d_cost = network_costs(config, shape)
    flops_per_image = ours_flops_per_image(g_cost, d_cost, config.training.d_steps)
    ours = Ours(config, run_inputs(config, images, labels), device)
    counted_flops_per_image, precision = probe_ours(ours, images_per_step)
    if abs(counted_flops_per_image / flops_per_image - 1) > 0.02:  # the trainer's step changed: see ours_flops_per_image
        log(f"  warning: torch counts {counted_flops_per_image:.4g} FLOPs per image in one step of ours, the layer count "
            f"{flops_per_image:.4g}: ours_flops_per_image no longer matches training.loop.alternating_step")
    contenders: list[Contender] = [Canonical(config, images, labels, device), InMemory(config, images, device), ours]
    windows, round_steps = interleaved_windows(contenders, bench, images_per_step, device)
    medians = {name: statistics.median(values) for name, values in windows.items()}
    gflops = flops_per_image * medians["ours"] / 1e9
    return {
        "config": bench.name, "device": str(device), "threads": torch.get_num_threads(),
        "canonical_img_s": round(medians["canonical"], 1), "in_memory_img_s": round(medians["in_memory"], 1),
        "ours_img_s": round(medians["ours"], 1),
        "ratio": round(median_ratio(windows["ours"], windows["canonical"]), 3),
        "ratio_in_memory": round(median_ratio(windows["ours"], windows["in_memory"]), 3),
        "gflops": round(gflops, 2),
        "flops_per_image": round(flops_per_image), "flops_per_image_counted": round(counted_flops_per_image),
        "canonical_flops_per_image": round(example_flops_per_image(g_cost, d_cost)),
        "precision": precision, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "deterministic": SETTINGS.deterministic, "compile": SETTINGS.compile,
        "log_every": config.training.log_every, "window_steps": round_steps,
        "windows": {name: [round(v, 1) for v in values] for name, values in windows.items()},
    }


def run_comparison(args: argparse.Namespace, device: torch.device) -> None:
    started = time.perf_counter()
    torch.set_num_threads(args.threads or torch.get_num_threads())
    log(f"device {device}, {torch.get_num_threads()} threads; measuring matmul peaks")
    peaks = matmul_peaks(device)
    log(f"  fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    names = list(CONFIGS) if args.config == "all" else [args.config]
    results = []
    for name in names:
        bench = CONFIGS[name]
        bench = replace(bench, rounds=args.rounds or bench.rounds, window_seconds=args.window_seconds or bench.window_seconds)
        log(f"{name}:")
        results.append(bench_config(bench, device))
    peaks = matmul_peaks(device, earlier=peaks)  # again at the end: the better of the two
    log(f"  peaks again: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    log(f"finished in {time.perf_counter() - started:.0f} s")
    for result in results:
        print(json.dumps(with_peaks(result, peaks)), flush=True)


def with_peaks(result: dict, peaks: dict[str, float]) -> dict:
    """`result` with the peak keys placed right after `gflops`, so the line reads in the documented order."""
    # peak_fraction: of the peak of the precision ours trains in. The bf16 peak where bf16 is the fast path; on a
    # CPU without bf16 units (AVX2 only) the trainer stays in fp32 and a fraction of the emulated bf16 peak
    # would read as thousands of percent.
    trained_in = "bf16" if "bfloat16" in result["precision"] else "fp32"
    peak_keys = {"peak_fraction": round(result["gflops"] / peaks[trained_in], 4),
                 "peak_fraction_bf16": round(result["gflops"] / peaks["bf16"], 4),
                 "peak_fraction_fp32": round(result["gflops"] / peaks["fp32"], 4),
                 "fp32_peak_gflops": round(peaks["fp32"], 1), "bf16_peak_gflops": round(peaks["bf16"], 1)}
    line: dict = {}
    for key, value in result.items():
        line[key] = value
        if key == "gflops":
            line |= peak_keys
    return line


# --------------------------------------------------------------------------------------- busy mode
# Each measurement is a subprocess of this script (`--worker`) training ours on the default config: it warms
# up, says "ready", waits for "go" on stdin (so two trainings overlap, and burners are already spinning), trains
# for a fixed time and prints its images/s. The quiet case runs the same way, so the three compare like for like.


def configure_trainer_threads(threads: int | None) -> str:
    """The trainer's thread policy (`threads.adapt_to_load`, which the loop also calls as it runs), or --threads."""
    if threads:
        os.environ[thread_helpers.THREADS_VARIABLE] = str(threads)  # fixed: the loop keeps it
        thread_helpers.configure_threads()
        return "--threads"
    thread_helpers.adapt_to_load()
    return "adapt_to_load"


def run_worker(args: argparse.Namespace, device: torch.device) -> None:
    policy = configure_trainer_threads(args.threads)
    bench = CONFIGS[DEFAULT_CONFIG]
    config = experiment_for(bench)
    images, labels = random_images(bench)
    ours = Ours(config, run_inputs(config, images, labels), device)
    chunk = steps_per_window({ours.name: single_step_seconds(ours, bench, device)}, 0.25)  # per train() call
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.busy_seconds:
        ours.run(chunk)
        steps += chunk
    synchronize(device)
    seconds = time.perf_counter() - start
    images_per_step = config.training.batch_size * config.training.d_steps
    print(json.dumps({"img_s": images_per_step * steps / seconds, "threads": torch.get_num_threads(),
                      "thread_policy": policy}), flush=True)


def _worker_command(args: argparse.Namespace) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--device", args.device,
               "--busy-seconds", str(args.busy_seconds)]
    return command + (["--threads", str(args.threads)] if args.threads else [])


# A burner that forks into `count` spinning processes: all of them in its session (start it in a new one to put
# them all in one other session, as one other shell or one process spinning on every core would be).
_BURNER = ("import os, sys\n"
           "for _ in range(int(sys.argv[1]) - 1):\n"
           "    if os.fork() == 0: break\n"
           "while True: pass\n")

# Where the burners run, as the kernel's autogroup scheduling sees them: in this script's session; all in one other
# session; each in a session of its own (two other shells).
BURNER_SESSIONS = ("same", "other", "separate")


def start_burners(count: int, session: str) -> list[subprocess.Popen]:
    """`count` CPU-bound processes; each returned Popen is the leader of its own process group when the session is
    not "same", so that `stop_burners` can end its forked children too."""
    if count == 0:
        return []
    if session == "other":
        return [subprocess.Popen([sys.executable, "-c", _BURNER, str(count)], start_new_session=True)]
    return [subprocess.Popen([sys.executable, "-c", _BURNER, "1"], start_new_session=session == "separate")
            for _ in range(count)]


def burner_pids(burners: list[subprocess.Popen], session: str) -> list[int]:
    """The burners' pids and those of the spinners they forked: their process groups, unless they share ours."""
    if session == "same":
        return [burner.pid for burner in burners]
    groups, pids = {burner.pid for burner in burners}, []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) in groups:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                continue  # it ended while we looked
    return pids


def stop_burners(burners: list[subprocess.Popen], session: str) -> None:
    for burner in burners:
        if session == "same":
            burner.kill()
        else:
            try:
                os.killpg(burner.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        burner.wait()


def measure_workers(args: argparse.Namespace, trainings: int, burners: int, session: str = "same") -> list[dict]:
    """Start `trainings` workers, wait until all are warm, start `burners` spinning processes (`start_burners`),
    then let the workers go; returns each worker's report. Every process started here is ended here."""
    workers = [subprocess.Popen(_worker_command(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for _ in range(trainings)]
    spinners: list[subprocess.Popen] = []
    try:
        for worker in workers:
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError(f"busy worker {worker.pid} failed before its warm-up ended")
        spinners = start_burners(burners, session)
        time.sleep(1.0 if burners else 0.0)  # let the interpreters start and begin spinning
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = [json.loads(worker.stdout.readline()) for worker in workers]
        for worker in workers:
            worker.wait()
        return reports
    finally:
        stop_burners(spinners, session)
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def run_busy(args: argparse.Namespace, device: torch.device) -> None:
    cores = os.cpu_count() or 1
    log(f"busy mode, {DEFAULT_CONFIG} on {device}: quiet")
    quiet_first = measure_workers(args, trainings=1, burners=0)[0]
    log(f"  quiet {quiet_first['img_s']:.0f} img/s ({quiet_first['threads']} threads, {quiet_first['thread_policy']}); "
        f"beside {cores} CPU-bound processes")
    # With autogroup scheduling the kernel shares CPUs between sessions first, then between a session's threads.
    burned = {}
    for session in BURNER_SESSIONS:
        burned[session] = measure_workers(args, trainings=1, burners=cores, session=session)[0]
        log(f"  beside burners in session '{session}': {burned[session]['img_s']:.0f} img/s")
    log("  two trainings at once")
    pair = measure_workers(args, trainings=2, burners=0)
    log("  two trainings " + ", ".join(f"{r['img_s']:.0f}" for r in pair) + " img/s; quiet again")
    quiet_last = measure_workers(args, trainings=1, burners=0)[0]
    log(f"  quiet {quiet_last['img_s']:.0f} img/s")
    # Quiet before and after, the faster taken: a neighbour's burst during one quiet run would flatter every ratio.
    quiet = max(quiet_first["img_s"], quiet_last["img_s"])
    common = {"config": DEFAULT_CONFIG, "device": str(device), "seconds": args.busy_seconds,
              "threads": quiet_first["threads"], "thread_policy": quiet_first["thread_policy"],
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""), "quiet_img_s": round(quiet, 1),
              "quiet_samples": [round(quiet_first["img_s"], 1), round(quiet_last["img_s"], 1)]}
    lines = [{"busy_ratio": round(report["img_s"] / quiet, 3), "case": "one_cpu_bound_process_per_core",
              "burners": cores, "burner_session": session, "img_s": round(report["img_s"], 1), **common}
             for session, report in burned.items()]
    for index, report in enumerate(pair):  # a fair share of the machine is half the quiet rate
        lines.append({"busy_ratio": round(report["img_s"] / (quiet / 2), 3), "case": "two_trainings",
                      "training": index, "img_s": round(report["img_s"], 1), **common})
    for line in lines:
        print(json.dumps(line), flush=True)


# -------------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--rounds", type=int, help="timed windows per contender (default: per config, 6 / 4)")
    parser.add_argument("--window-seconds", type=float, help="target seconds per window (default: per config, 2.5 / 6)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch.get_num_threads(); "
                                                    "in --busy, the trainer's own policy)")
    parser.add_argument("--busy", action="store_true", help="measure ours sharing the CPUs instead (busy_ratio lines)")
    parser.add_argument("--busy-seconds", type=float, default=10.0, help="seconds each --busy training runs")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one --busy training
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    global SETTINGS
    SETTINGS = DeviceSettings.from_env(name=args.device)  # GAN_DETERMINISTIC and GAN_COMPILE as a deployment sets them
    device = prepare_device(SETTINGS)
    if args.worker:
        run_worker(args, device)
    elif args.busy:
        run_busy(args, device)
    else:
        run_comparison(args, device)


if __name__ == "__main__":
    main()
