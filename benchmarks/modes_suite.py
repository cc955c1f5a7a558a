"""One seed of the mode-collapse benchmark (`bench_modes.py`, issue 13): build, train, sample, score.

A configuration (`ModesConfig`) is PacGAN's 2-D protocol by default. Each seed is built as the pipeline builds
a run (`torch.manual_seed(seed)`, `dcgan_init_`, `load_mixture(seed)`'s train split, `select_reference`'s z) and
trained by the project's own step functions (gan_assets/core/training/loop.py), so a benchmark row measures
the code the assets train with. Only PacGAN's maxout discriminator is the benchmark's own.
Benchmark code: nothing under gan_assets/ imports it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from gan_assets.core.config import DatasetConfig, TrainingConfig
from gan_assets.core.data.reference import select_reference
from gan_assets.core.data.sources.mixtures import load_mixture, mixture_modes
from gan_assets.core.evaluation.metrics import Evidence, MetricContext, modes
from gan_assets.core.models.gan.networks import (
    MLP_BASE_DEPTH,
    MLPGenerator,
    _LabelAwareDiscriminator,
    dcgan_init_,
    spectral_normalise,
)
from gan_assets.core.models.gan.norms import uses_reference
from gan_assets.core.training.loop import STEP_FUNCTIONS, GanState, TrainingData, new_state

PACGAN_EVAL_SAMPLES = 2500  # samples per seed in PacGAN's Table 1 protocol
NUM_MODES = {"ring8": 8, "grid25": 25}
EVAL_SEED_OFFSET = 1_000_003  # evaluation z never replays a training stream


@dataclass(frozen=True)
class ModesConfig:
    """One 2-D configuration and the seeds it is trained with (the seeds are a field, not partitions)."""

    dataset: str = "ring8"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    steps: int = 2000  # generator updates
    batch_size: int = 100
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.8
    beta2: float = 0.999
    generator_loss: str = "non_saturating"
    label_smoothing: float = 0.0  # one-sided: D's real target is 1 - alpha
    d_steps: int = 1
    update: str = "alternating"
    norm: str = "batch"  # the generator's hidden layers; D has none (PacGAN's)
    labels: bool = False  # conditional G (class embedding) and projection D, on the mode index
    z_dim: int = 2
    g_width: int = 400
    g_layers: int = 4
    d_width: int = 200
    d_layers: int = 3
    pieces: int = 5
    label_dim: int = 16
    reference_size: int = 128  # reference / virtual BN: fixed z per seed
    num_samples: int = 25_600  # dataset draw per seed (80% train)
    lr_decay_to: float = 1.0  # final lr / initial lr, linear over the run (1.0: constant, PacGAN's)
    # beyond the tutorial (gan_assets/core/training: ema.py, loop.py; models/gan/networks.py)
    pack: int = 1  # PacGAN: D judges `pack` points at once
    spectral_norm: bool = False  # of D's maxout and head layers
    ema_decay: float = 0.0  # sample from G's moving average
    r1_gamma: float = 0.0
    r1_every: int = 16

    def training(self) -> TrainingConfig:
        """The project's TrainingConfig with these values: the step functions and optimizers read it."""
        return TrainingConfig(steps=self.steps, generator_loss=self.generator_loss,
                              label_smoothing=self.label_smoothing, d_steps=self.d_steps, update=self.update,
                              batch_size=self.batch_size, lr_g=self.lr_g, lr_d=self.lr_d, beta1=self.beta1,
                              beta2=self.beta2, checkpoint_every=self.steps, log_every=self.steps,
                              precision="fp32", ema_decay=self.ema_decay, r1_gamma=self.r1_gamma,
                              r1_every=self.r1_every)

    def with_(self, **changes) -> ModesConfig:
        return replace(self, **changes)


class Maxout(nn.Module):
    """Linear(in, units * pieces) then the max over each unit's pieces (Goodfellow et al. 2013)."""

    def __init__(self, fan_in: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(fan_in, units * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).unflatten(-1, (self.units, self.pieces)).amax(-1)


class MaxoutDiscriminator(_LabelAwareDiscriminator):
    """PacGAN's 2-D discriminator: `layers` maxout layers, no norm, one logit per point (plus a projection
    term on the mode index when conditional). The base class gives it the features / logits interface the
    project's step functions call."""

    input_ndim = 2

    def __init__(self, width: int = 200, pieces: int = 5, layers: int = 3, in_dim: int = 2,
                 num_classes: int = 0, conditional: bool = False) -> None:
        super().__init__("none")
        self.body = nn.Sequential(*(Maxout(in_dim if k == 0 else width, width, pieces) for k in range(layers)))
        self._set_heads(nn.Linear(width, 1), None, width, num_classes, conditional)


@dataclass
class SeedRun:
    """One seed of a configuration: the project's GanState and the train split it draws from."""

    config: ModesConfig
    seed: int
    state: GanState
    data: TrainingData


def build_players(config: ModesConfig, seed: int, reference: tuple[Tensor, Tensor]) -> tuple[nn.Module, nn.Module]:
    """G and D initialised as the pipeline's fresh state is (manual_seed, then dcgan_init_)."""
    classes = NUM_MODES[config.dataset] if config.labels else 0
    torch.manual_seed(seed)
    g = MLPGenerator(config.z_dim, config.g_width, 2, config.norm, config.g_layers - MLP_BASE_DEPTH,
                     classes, config.label_dim)
    d = MaxoutDiscriminator(config.d_width, config.pieces, config.d_layers, 2 * config.pack, classes, config.labels)
    d.pack = config.pack
    dcgan_init_(g), dcgan_init_(d)
    if config.spectral_norm:
        spectral_normalise(d)
    if uses_reference(config.norm):
        reference_z, reference_labels = reference
        g.set_reference(reference_z, reference_labels.long() if config.labels else None)
    return g, d


def build_seed(config: ModesConfig, seed: int) -> SeedRun:
    """The seed's own dataset draw, reference batch, players and optimizer state, on the CPU."""
    train = load_mixture(DatasetConfig(source=config.dataset, num_samples=config.num_samples), seed).subset("train")
    reference = select_reference(train.ids, train.labels, config.reference_size, config.z_dim, seed)
    g, d = build_players(config, seed, reference.tensors())
    # fake labels are drawn over the modes even for an unconditional G, as the pipeline's run draws them:
    # the rng streams then match whatever `labels` is
    state = new_state(g, d, config.training(), seed, torch.device("cpu"), NUM_MODES[config.dataset])
    data = TrainingData(torch.from_numpy(train.points), torch.from_numpy(train.labels).long())
    return SeedRun(config, seed, state, data)


def lr_factor(config: ModesConfig, step: int) -> float:
    """Linear from 1 at the first step to `lr_decay_to` at the last: the decay lets the samples settle into
    the 3-std discs instead of orbiting them."""
    return 1.0 + (config.lr_decay_to - 1.0) * step / max(config.steps - 1, 1)


def _set_lr(run: SeedRun) -> None:
    factor = lr_factor(run.config, run.state.step)
    for opt, lr in ((run.state.opt_g, run.config.lr_g), (run.state.opt_d, run.config.lr_d)):
        for group in opt.param_groups:
            group["lr"] = lr * factor


def train_seed(run: SeedRun, until: int | None = None, seconds_budget: float | None = None) -> float:
    """Train to step `until` (the configuration's steps by default) or until `seconds_budget` runs out;
    returns the seconds spent.

    The loop calls the project's step function directly rather than `train`: the lr changes every step,
    which `train` has no hook for, and `train` re-sets torch's thread count to the machine's load, which
    would undo `--threads`."""
    config, training = run.config, run.config.training()
    step_fn, state = STEP_FUNCTIONS[config.update], run.state
    until = config.steps if until is None else until
    state.generator.train(), state.discriminator.train()
    start = time.perf_counter()
    while state.step < until:
        _set_lr(run)
        step_fn(state, run.data, training)
        state.step += 1
        if seconds_budget is not None and time.perf_counter() - start > seconds_budget:
            break
    return time.perf_counter() - start


@torch.no_grad()
def sample(run: SeedRun, n: int = PACGAN_EVAL_SAMPLES) -> Tensor:
    """(n, 2) samples from the seed's own evaluation z, G in eval mode (batch norm: running statistics, the
    project's default `evaluation.sampling: eval`); a conditional G is asked for every mode in turn. With
    `ema_decay`, G's moving average draws them (the project's default `evaluation.generator: ema`)."""
    config, g = run.config, run.state.ema if run.state.ema is not None else run.state.generator
    z = torch.randn(n, config.z_dim, generator=torch.Generator().manual_seed(run.seed + EVAL_SEED_OFFSET))
    y = torch.arange(n) % NUM_MODES[config.dataset] if config.labels else None
    g.eval()
    try:
        return g(z, y)
    finally:
        g.train()


def score(points: Tensor, dataset: str) -> dict[str, float]:
    """The project's `modes` metric (PacGAN's protocol: 3 std, reverse KL against uniform) on (n, 2) points."""
    centers, std = mixture_modes(dataset)
    ctx = MetricContext(class_prior=torch.ones(1), mode_centers=centers, mode_std=std)
    n = len(points)
    # the mode metric reads only the points; features / probs are placeholders Evidence requires
    evidence = Evidence(features=torch.zeros(n, 1), probs=torch.ones(n, 1), points=points.double())
    return modes(evidence, evidence, ctx)
