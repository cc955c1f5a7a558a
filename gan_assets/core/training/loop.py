"""The GAN training loop (tutorial §3.1): D and G each take gradient steps on their own cost.

The loop knows nothing of who watches it: progress, checkpoints and aborts go through callbacks
(`TrainingCallbacks`), as in stylegan2-ada's training loop. Statistics stay on the device and are
summed across steps; the host syncs only every `log_every` steps, so a GPU is never stalled. At each
of those syncs the losses and both players' weights are checked: a non-finite value stops training
(`NonFiniteTraining`, naming the step and the player) before any checkpoint of it is written.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from gan_assets.core.models.gan.losses import discriminator_half_loss, discriminator_hinge_half, generator_loss
from gan_assets.core.models.gan.networks import model_input
from gan_assets.core.runtime.device import bf16_is_fast
from gan_assets.core.runtime.faults import crash_point
from gan_assets.core.runtime.threads import LoadFollower
from gan_assets.core.training.augment import ADA_INTERVAL, ada_adjust, augment
from gan_assets.core.training.ema import new_ema, update_ema

if TYPE_CHECKING:
    from gan_assets.core.config import TrainingConfig

STAT_NAMES = ("loss_d", "loss_g", "d_x", "d_g_z")  # pytorch/examples dcgan's Loss_D, Loss_G, D(x), D(G(z))


@dataclass
class GanState:
    """Everything a resumed run needs to continue exactly where it stopped."""

    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    rng: torch.Generator  # draws minibatch indices, z and fake labels, on the training device
    num_classes: int = 1  # classes of the dataset: fake labels for a conditional G are uniform over them
    step: int = 0
    compute_dtype: torch.dtype | None = None  # bf16: both players' forwards under autocast; None: fp32
    # Data parallel (core/training/distributed.py): every rank draws the whole global batch from the same stream and
    # keeps these rows of it. None: all rows, one process.
    rows: slice | None = None
    compiled: str = "off"  # the torch.compile mode of the players' forwards (`compile_players`)
    # Beyond the tutorial (training.ema_decay, training.ada_target): G_ema, and ADA's augmentation probability p
    # with its running (sum of sign D(real), count) since p last moved; device tensors, saved in every checkpoint.
    ema: nn.Module | None = None
    ada_p: Tensor | None = None
    ada_signs: Tensor | None = None

    def players(self) -> dict[str, nn.Module]:
        """The networks a checkpoint saves, by the file each goes to (training/checkpoints.py)."""
        return {"generator": self.generator, "discriminator": self.discriminator,
                **({"generator_ema": self.ema} if self.ema is not None else {})}

    def extra_state(self) -> dict[str, Tensor]:
        """What a checkpoint's state file holds beside the optimisers and the RNG."""
        return {"ada_p": self.ada_p, "ada_signs": self.ada_signs} if self.ada_p is not None else {}

    def load_extra_state(self, saved: dict) -> None:
        if self.ada_p is not None:
            self.ada_p.copy_(saved["ada_p"]), self.ada_signs.copy_(saved["ada_signs"])

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}


@dataclass
class TrainingCallbacks:
    progress: Callable[[int, dict[str, float]], None] = lambda step, stats: None
    checkpoint: Callable[[GanState], None] = lambda state: None
    abort: Callable[[], bool] = lambda: False
    # a window that outlasts `heartbeat_seconds` reports the means of its steps so far (one host sync), so a watcher
    # hears from a slow run at least that often; the history keeps whole windows only
    heartbeat: Callable[[int, dict[str, float]], None] | None = None
    heartbeat_seconds: float = 30.0


@dataclass
class TrainingReport:
    steps_done: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        return self.steps_done / self.seconds if self.seconds > 0 else float("nan")


def resolve_precision(name: str, device: torch.device, images: bool = True) -> torch.dtype | None:
    """`training.precision` → the autocast dtype (None: fp32). `auto` takes bf16 where the device computes it
    fast and the players are convolutional; the 2-D MLPs are too small for it to pay."""
    if name == "fp32" or (name == "auto" and not (images and bf16_is_fast(device))):
        return None
    return torch.bfloat16


def make_optimizer(params, lr: float, config: TrainingConfig, device: torch.device) -> torch.optim.Optimizer:
    # fused: one kernel for all parameters instead of a dozen small ops per tensor (the update is not the
    # bottleneck, but at these sizes its per-op overhead is measurable)
    fused = device.type in ("cpu", "cuda")
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), fused=fused)


def new_state(generator: nn.Module, discriminator: nn.Module, config: TrainingConfig,
              seed: int, device: torch.device, num_classes: int = 1,
              compute_dtype: torch.dtype | None = None) -> GanState:
    rng = torch.Generator(device=device)
    rng.manual_seed(seed)
    ada = config.ada_target > 0
    return GanState(generator, discriminator,
                    make_optimizer(generator.parameters(), config.lr_g, config, device),
                    make_optimizer(discriminator.parameters(), config.lr_d, config, device), rng, num_classes,
                    compute_dtype=compute_dtype, ema=new_ema(generator) if config.ema_decay > 0 else None,
                    ada_p=torch.zeros((), device=device) if ada else None,
                    ada_signs=torch.zeros(2, device=device) if ada else None)


@dataclass
class TrainingData:
    """The train split and its labels, resident on the training device."""

    images: Tensor  # (N, C, H, W) uint8 images, or (N, 2) float32 points of a 2-D mixture
    labels: Tensor  # class indices (the mode index for points)

    @property
    def device(self) -> torch.device:
        return self.images.device


def sample_real(data: TrainingData, batch_size: int, rng: torch.Generator,
                rows: slice | None = None) -> tuple[Tensor, Tensor]:
    index = torch.randint(len(data.images), (batch_size,), device=data.device, generator=rng)
    if rows is not None:  # this rank's shard of the global batch
        index = index[rows]
    return model_input(data.images[index]), data.labels[index]


def sample_fake(state: GanState, batch_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(z, y): prior samples and uniform class labels (ignored by an unconditional G)."""
    z = torch.randn(batch_size, state.generator.z_dim, device=device, generator=state.rng)
    y = torch.randint(state.num_classes, (batch_size,), device=device, generator=state.rng)
    if state.rows is not None:  # this rank's shard of the global batch
        return z[state.rows], y[state.rows]
    return z, y


def _autocast(state: GanState, device: torch.device):
    """bf16 autocast when the state asks for it: convs and matmuls in bf16, losses in fp32 (see `_d_loss`)."""
    if state.compute_dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=state.compute_dtype)


def _class_loss(d: nn.Module, phi: Tensor, labels: Tensor, config: TrainingConfig) -> Tensor:
    """AC-GAN's auxiliary term: cross-entropy of D's class head (zero without one)."""
    if getattr(d, "class_head", None) is None:
        return phi.new_zeros(())
    return config.classifier_weight * F.cross_entropy(d.class_logits(phi).float(), labels)


def _d_loss(state: GanState, real: tuple[Tensor, Tensor], fake: tuple[Tensor, Tensor],
            config: TrainingConfig, r1: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    # Real and fake go through D separately, so batch norm normalises each minibatch on its own (§3.3).
    real_loss, real_logits = _real_half(state, real, config, r1)
    fake_loss, fake_logits = _fake_half(state, fake, config)
    return real_loss + fake_loss, real_logits, fake_logits


def _d_view(state: GanState, x: Tensor, config: TrainingConfig) -> Tensor:
    """What D sees of a batch: the images through training.augment (DiffAugment; with ADA, with probability p)."""
    return augment(x, config.augment, state.rng, state.ada_p) if config.augment else x


def _d_half(logits: Tensor, real: bool, config: TrainingConfig) -> Tensor:
    """One half of J(D) in the chosen game: the tutorial's cross-entropy with its targets, or the hinge's margin."""
    if config.generator_loss == "hinge":
        return discriminator_hinge_half(logits, real)
    return discriminator_half_loss(logits, 1.0 - config.label_smoothing if real else config.fake_label)


def _real_half(state: GanState, real: tuple[Tensor, Tensor], config: TrainingConfig,
               r1: bool = False) -> tuple[Tensor, Tensor]:
    """J(D)'s real half: (loss, fp32 logits); with `r1`, plus the lazy R1 penalty on these reals."""
    d, (x, y) = state.discriminator, real
    x = _d_view(state, x, config)
    if r1:
        x = x.detach().requires_grad_(True)
    phi = d.features(x)
    logits = d.logits(phi, y).float()  # the costs in fp32, whatever the convs ran in
    loss = _d_half(logits, True, config) + _class_loss(d, phi, y, config)
    return (loss + r1_penalty(logits, x, config) if r1 else loss), logits


def r1_penalty(logits: Tensor, x: Tensor, config: TrainingConfig) -> Tensor:
    """R1 (Mescheder et al. 2018): γ/2 · E‖∇ₓ l(x)‖² on reals, pushing D's gradient to zero on the data; lazy
    (every `r1_every` D steps, weighted by `r1_every`: StyleGAN2), the same expected penalty at a fraction of the
    cost. The gradient keeps its graph, so D's weights receive the penalty's own gradient."""
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return 0.5 * config.r1_gamma * config.r1_every * grad.float().square().flatten(1).sum(1).mean()


def _fake_half(state: GanState, fake: tuple[Tensor, Tensor], config: TrainingConfig) -> tuple[Tensor, Tensor]:
    """J(D)'s fake half on D: (loss, fp32 logits)."""
    d, (x, y) = state.discriminator, fake
    phi = d.features(_d_view(state, x, config))
    logits = d.logits(phi, y).float()
    loss = _d_half(logits, False, config)
    if state.generator.conditional:  # fakes have an intended class only when G was given one
        loss = loss + _class_loss(d, phi, y, config)
    return loss, logits


def _g_loss(state: GanState, fake: Tensor, y_fake: Tensor, config: TrainingConfig) -> tuple[Tensor, Tensor]:
    phi = state.discriminator.features(_d_view(state, fake, config))  # augmented as D saw fakes: differentiable
    fake_logits = state.discriminator.logits(phi, y_fake).float()
    loss = generator_loss(config.generator_loss, fake_logits)
    if state.generator.conditional:
        loss = loss + _class_loss(state.discriminator, phi, y_fake, config)
    return loss, fake_logits


Fakes = tuple[Tensor, Tensor]  # G(z) with its graph to G's parameters, and the classes it was asked for


def d_update(state: GanState, data: TrainingData, config: TrainingConfig, keep_fakes: bool = False,
             d_index: int = 0) -> tuple[Tensor, Tensor, Fakes | None]:
    """One D step, the run's `d_index`-th. With `keep_fakes`, G's forward keeps its graph and the fakes are
    returned, so the G step that follows reuses them (the DCGAN example's loop: one G forward per iteration)."""
    device = data.device
    real = sample_real(data, config.batch_size, state.rng, state.rows)
    z, y_fake = sample_fake(state, config.batch_size, device)
    state.opt_d.zero_grad(set_to_none=True)
    with _autocast(state, device):  # one context for the update: G's forward and D's cost
        with torch.set_grad_enabled(keep_fakes):
            fake = state.generator(z, y_fake)
        loss, real_logits, _ = _d_loss(state, real, (fake.detach(), y_fake), config, r1_due(config, d_index))
    loss.backward()
    state.opt_d.step()
    follow_ada(state, real_logits.detach(), config, d_index)
    return loss.detach(), torch.sigmoid(real_logits.detach()).mean(), (fake, y_fake) if keep_fakes else None


def r1_due(config: TrainingConfig, d_index: int) -> bool:
    return config.r1_gamma > 0 and d_index % config.r1_every == 0


def follow_ada(state: GanState, real_logits: Tensor, config: TrainingConfig, d_index: int) -> None:
    """ADA's bookkeeping after a D step: add sign D(real) to the running sum; every ADA_INTERVAL D steps move p.
    All on the device: no host sync."""
    if state.ada_p is None:
        return
    state.ada_signs += torch.stack([real_logits.sign().sum(), real_logits.new_tensor(real_logits.numel())])
    if d_index % ADA_INTERVAL == ADA_INTERVAL - 1:
        if dist.is_initialized():  # data parallel: every rank moves p by the global batch's signs, so p stays one
            dist.all_reduce(state.ada_signs)
        state.ada_p.copy_(ada_adjust(state.ada_p, state.ada_signs[0] / state.ada_signs[1], config.ada_target,
                                     config.batch_size))
        state.ada_signs.zero_()


def g_update(state: GanState, config: TrainingConfig, fakes: Fakes) -> tuple[Tensor, Tensor]:
    """G's step on `fakes`, judged by the D that was just updated."""
    fake, y_fake = fakes
    with _autocast(state, fake.device):
        loss, fake_logits = _g_loss(state, fake, y_fake, config)
    _set_grads(state.generator, loss)  # G's grads only: D's weight gradients would be wasted work
    state.opt_g.step()
    follow_ema(state, config)
    return loss.detach(), torch.sigmoid(fake_logits.detach()).mean()


def follow_ema(state: GanState, config: TrainingConfig) -> None:
    """After G's step number state.step + 1, G_ema takes its moving-average step (training/ema.py)."""
    if state.ema is not None:
        update_ema(state.ema, state.generator, config.ema_decay, state.step + 1)


def alternating_step(state: GanState, data: TrainingData, config: TrainingConfig) -> Tensor:
    """`d_steps` D updates, then one G update against the updated D, on the last D step's z."""
    for k in range(config.d_steps):
        loss_d, d_x, fakes = d_update(state, data, config, keep_fakes=k == config.d_steps - 1,
                                      d_index=state.step * config.d_steps + k)
    loss_g, d_g_z = g_update(state, config, fakes)
    return torch.stack([loss_d, loss_g, d_x, d_g_z])


def simultaneous_step(state: GanState, data: TrainingData, config: TrainingConfig) -> Tensor:
    """Both players' gradients come from the same parameters before either moves (§3.1); one forward of the
    fakes feeds both costs."""
    device = data.device
    real = sample_real(data, config.batch_size, state.rng, state.rows)
    z, y_fake = sample_fake(state, config.batch_size, device)
    with _autocast(state, device):
        fake = state.generator(z, y_fake)
        loss_d, real_logits, _ = _d_loss(state, real, (fake.detach(), y_fake), config, r1_due(config, state.step))
        loss_g, fake_logits = _g_loss(state, fake, y_fake, config)
    _set_grads(state.discriminator, loss_d)
    _set_grads(state.generator, loss_g)
    state.opt_d.step()
    state.opt_g.step()
    follow_ada(state, real_logits.detach(), config, state.step)
    follow_ema(state, config)
    d_x = torch.sigmoid(real_logits.detach()).mean()
    d_g_z = torch.sigmoid(fake_logits.detach()).mean()
    return torch.stack([loss_d.detach(), loss_g.detach(), d_x, d_g_z])


def _set_grads(player: nn.Module, loss: Tensor) -> None:
    """Gradients of `loss` for this player's parameters alone (each player moves only its own θ)."""
    params = [p for p in player.parameters() if p.requires_grad]
    for param, grad in zip(params, torch.autograd.grad(loss, params)):
        param.grad = in_layout_of(param, grad)


def in_layout_of(param: Tensor, grad: Tensor) -> Tensor:
    """`grad` with `param`'s strides. `backward()` keeps autograd's rule that a gradient takes its weight's memory
    layout; `autograd.grad` does not, and a bf16 convolution can return an NCHW gradient for a channels_last
    weight. CUDA's fused Adam refuses a parameter and gradient of different layouts (the CPU kernel never checks)."""
    if grad.stride() == param.stride():
        return grad
    return torch.empty_strided(param.shape, param.stride(), dtype=grad.dtype, device=grad.device).copy_(grad)


STEP_FUNCTIONS = {"alternating": alternating_step, "simultaneous": simultaneous_step}  # training.update


def compile_players(state: GanState, mode: str) -> None:
    """Compile G's forward and D's `features`/`logits` (the methods the costs call) with `torch.compile(mode=mode)`;
    `reduce-overhead` replays them as CUDA graphs, for the small default step, whose time on a GPU is kernel
    launches. The modules, their state dicts and checkpoints are unchanged; optimiser steps and the samplers stay
    eager (their generator-driven draws are what makes a resume exact)."""
    g, d = state.generator, state.discriminator
    g.forward = torch.compile(g.forward, mode=mode)
    d.features = torch.compile(d.features, mode=mode)
    d.logits = torch.compile(d.logits, mode=mode)
    state.compiled = mode


class NonFiniteTraining(FloatingPointError):
    """A loss or a weight went NaN/inf: training stopped before checkpointing it."""

    def __init__(self, step: int, player: str, what: str) -> None:
        super().__init__(f"training stopped at step {step}: {player}'s {what} is not finite (NaN or inf); the last "
                         f"checkpoint before it stays the latest. Lower training.lr_g / lr_d or check the data.")
        self.step, self.player = step, player


def train(state: GanState, data: TrainingData, config: TrainingConfig,
          callbacks: TrainingCallbacks) -> TrainingReport:
    """Run from `state.step` to `config.steps` on the train split resident on the device."""
    state.generator.train()
    state.discriminator.train()
    start, first_step = time.perf_counter(), state.step
    # on a CPU, follow the cores other processes leave free (core/runtime/threads.py); a GPU's step has no such choice
    follow_load = LoadFollower() if data.device.type == "cpu" else (lambda: None)
    report = _run_steps(state, data, config, callbacks, follow_load)
    report.steps_done, report.seconds = state.step - first_step, time.perf_counter() - start
    return report


def _run_steps(state: GanState, data: TrainingData, config: TrainingConfig, callbacks: TrainingCallbacks,
               follow_load: Callable[[], object]) -> TrainingReport:
    step_fn = STEP_FUNCTIONS[config.update]
    report = TrainingReport(0, 0.0)
    window, window_steps = torch.zeros(len(STAT_NAMES), device=data.device), 0
    graphs = state.compiled == "reduce-overhead"
    heartbeat = Heartbeat(callbacks, STAT_NAMES)
    while state.step < config.steps and not callbacks.abort():
        follow_load()
        if graphs:  # a new iteration: CUDA graphs may reuse the previous step's output buffers
            torch.compiler.cudagraph_mark_step_begin()
        window += step_fn(state, data, config)
        state.step, window_steps = state.step + 1, window_steps + 1
        crash_point("train_step")
        checkpoint_due = state.step % config.checkpoint_every == 0 or state.step == config.steps
        if state.step % config.log_every == 0 or state.step == config.steps:
            report.history.append(_flush(window, window_steps, state.step))
            window_steps = 0
            check_finite(state, report.history[-1])
            callbacks.progress(state.step, report.history[-1])
            heartbeat.reset()
        else:
            heartbeat.beat_if_due(state.step, window, window_steps)
            if checkpoint_due:
                check_finite(state, None)
        if checkpoint_due:
            callbacks.checkpoint(state)
    return report


class Heartbeat:
    """Calls `callbacks.heartbeat` with a window's means so far once `heartbeat_seconds` pass without a report.
    Between beats it costs one clock read per step."""

    def __init__(self, callbacks: TrainingCallbacks, names: tuple[str, ...]) -> None:
        self.callbacks, self.names = callbacks, names
        self.reset()

    def reset(self) -> None:
        self.last = time.monotonic()

    def beat_if_due(self, step: int, window: Tensor, window_steps: int) -> None:
        if self.callbacks.heartbeat is None or time.monotonic() - self.last < self.callbacks.heartbeat_seconds:
            return
        means = (window / window_steps).tolist()  # a host sync, at most once per heartbeat_seconds
        self.callbacks.heartbeat(step, {"step": step, **dict(zip(self.names, means))})
        self.reset()


def check_finite(state: GanState, stats: dict[str, float] | None) -> None:
    """Raise `NonFiniteTraining` when a logged loss or any weight of either player is NaN/inf (one host sync)."""
    for player, loss in (("discriminator", "loss_d"), ("generator", "loss_g")):
        if stats is not None and not math.isfinite(stats[loss]):
            raise NonFiniteTraining(state.step, player, loss)
    for player, module in (("generator", state.generator), ("discriminator", state.discriminator)):
        flags = [p.isfinite().all() for p in module.parameters()]
        if flags and not bool(torch.stack(flags).all()):
            raise NonFiniteTraining(state.step, player, "weights")


def _flush(window: Tensor, count: int, step: int) -> dict[str, float]:
    means = (window / count).tolist()  # the one host sync per log window
    window.zero_()
    return {"step": step, **dict(zip(STAT_NAMES, means))}
