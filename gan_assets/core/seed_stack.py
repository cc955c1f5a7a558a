"""Train S seeds of one 2-D mixture configuration at once, as one batched model (PacGAN's protocol, issue 13).

Why: the PacGAN networks are small (G 2 -> 4x400 -> 2, D 3 maxout layers of 200 units x 5 pieces), so one
seed's step is a few dozen small matmuls whose per-op overhead rivals their arithmetic. Stacking the S seeds
along a leading dimension turns every layer into one `torch.baddbmm` over (S, batch, features): the same ops
count for S seeds as for one. Measured, it does not make the step faster on the project's CPUs (0.84x the
seeds one after another here, ~1.0x on an AVX2 machine: the step is arithmetic-bound and oneDNN's linear beats
baddbmm on these shapes); it is kept for one model, one evaluation and one scatter per configuration.

What is the same as the project's loop (`gan_assets.core.training_loop`), which a test checks step for step:
- the networks are the project's `MLPGenerator` (with its norms) and `MaxoutDiscriminator` below, built one
  per seed with `torch.manual_seed(seed)` and `dcgan_init_`, then stacked; `unstack` gives them back;
- the costs are the project's `discriminator_loss` / `generator_loss` (one-sided smoothing through
  `1 - label_smoothing`), times S: the costs average over the stacked (S, batch) logits, so S x mean is the
  sum of the per-seed costs and each seed gets exactly its own gradient;
- Adam: one optimizer (the project's `make_optimizer`) over the stacked tensors. Adam is elementwise, so this
  is S independent Adams;
- each seed has its own `torch.Generator` seeded with the seed, drawn in the project's order (minibatch
  indices, z, fake labels), on its own dataset draw (`load_mixture(config, seed)`), so seed s of the stack
  follows the run `train` would make with `seed: s`;
- `d_steps` D updates then one G update on the last D step's fakes (`alternating`), or both players' gradients
  from the same parameters (`simultaneous`); batch norm's running statistics move on every G forward.
The discriminator has no norm (PacGAN's); `norm` (batch / reference / virtual / none) is the generator's.
Never imports dagster.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_assets.core.config import DatasetConfig, TrainingConfig
from gan_assets.core.losses import discriminator_loss, generator_loss
from gan_assets.core.metrics import Evidence, MetricContext, modes
from gan_assets.core.networks import MLP_BASE_DEPTH, MLPGenerator, _LabelAwareDiscriminator, dcgan_init_
from gan_assets.core.norms import BatchNorm, NoNorm, ReferenceBatchNorm, VirtualBatchNorm, uses_reference
from gan_assets.core.reference import select_reference
from gan_assets.core.sources.mixtures import load_mixture, mixture_modes
from gan_assets.core.training_loop import STEP_FUNCTIONS, GanState, TrainingData, make_optimizer, new_state

PACGAN_EVAL_SAMPLES = 2500  # samples per evaluation in PacGAN's Table 1 protocol
NUM_MODES = {"ring8": 8, "grid25": 25}


@dataclass(frozen=True)
class StackConfig:
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
    norm: str = "batch"  # the generator's hidden layers
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

    def training(self) -> TrainingConfig:
        """The project's TrainingConfig with these values: the losses and optimizer read it."""
        return TrainingConfig(steps=self.steps, generator_loss=self.generator_loss,
                              label_smoothing=self.label_smoothing, d_steps=self.d_steps, update=self.update,
                              batch_size=self.batch_size, lr_g=self.lr_g, lr_d=self.lr_d, beta1=self.beta1,
                              beta2=self.beta2, checkpoint_every=self.steps, log_every=self.steps,
                              precision="fp32")

    def with_(self, **changes) -> StackConfig:
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)


class Maxout(nn.Module):
    """Linear(in, units * pieces) then the max over each unit's pieces (Goodfellow et al. 2013)."""

    def __init__(self, fan_in: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(fan_in, units * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).unflatten(-1, (self.units, self.pieces)).amax(-1)


class MaxoutDiscriminator(_LabelAwareDiscriminator):
    """PacGAN's 2-D discriminator: `layers` maxout layers, no norm, one logit per point (a projection term
    on the mode index when conditional), with the project discriminators' features / logits interface."""

    input_ndim = 2

    def __init__(self, width: int = 200, pieces: int = 5, layers: int = 3, in_dim: int = 2,
                 num_classes: int = 0, conditional: bool = False) -> None:
        super().__init__("none")
        blocks: list[nn.Module] = []
        for k in range(layers):
            blocks.append(Maxout(in_dim if k == 0 else width, width, pieces))
        self.body = nn.Sequential(*blocks)
        self._set_heads(nn.Linear(width, 1), None, width, num_classes, conditional)


def build_players(config: StackConfig, seed: int, reference_z: Tensor | None = None,
                  reference_labels: Tensor | None = None) -> tuple[MLPGenerator, MaxoutDiscriminator]:
    """One seed's G and D, initialised as the project's `_fresh_state` does (manual_seed, dcgan_init_)."""
    classes = NUM_MODES[config.dataset] if config.labels else 0
    torch.manual_seed(seed)
    g = MLPGenerator(config.z_dim, config.g_width, 2, config.norm, config.g_layers - MLP_BASE_DEPTH,
                     classes, config.label_dim)
    d = MaxoutDiscriminator(config.d_width, config.pieces, config.d_layers, 2, classes, config.labels)
    dcgan_init_(g), dcgan_init_(d)
    if uses_reference(config.norm):
        g.set_reference(reference_z, reference_labels if config.labels else None)
    return g, d


@dataclass
class SeedData:
    """Each seed's train split (S, N, 2), its mode labels (S, N), and its reference z / labels."""

    points: Tensor
    labels: Tensor
    reference_z: Tensor | None
    reference_labels: Tensor | None


def seed_data(config: StackConfig) -> SeedData:
    """Per seed: `load_mixture(seed)`'s train split, and `select_reference`'s z (as the pipeline picks them)."""
    points, labels, ref_z, ref_y = [], [], [], []
    for seed in config.seeds:
        data = load_mixture(DatasetConfig(source=config.dataset, num_samples=config.num_samples), seed)
        train = data.subset("train")
        points.append(torch.from_numpy(train.points))
        labels.append(torch.from_numpy(train.labels).long())
        ref = select_reference(train.ids, train.labels, config.reference_size, config.z_dim, seed)
        ref_z.append(torch.from_numpy(ref.z))
        ref_y.append(torch.from_numpy(ref.labels).long())
    n = min(len(p) for p in points)  # balanced mixtures: every seed's split has the same size
    return SeedData(torch.stack([p[:n] for p in points]), torch.stack([y[:n] for y in labels]),
                    torch.stack(ref_z), torch.stack(ref_y))


# ---------------------------------------------------------------------------------------------- stacked model


def _stack(modules: list[nn.Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    params = {name: torch.stack([dict(m.named_parameters())[name].detach() for m in modules]).requires_grad_()
              for name, _ in modules[0].named_parameters()}
    buffers = {name: torch.stack([dict(m.named_buffers())[name].detach() for m in modules]).clone()
               for name, b in modules[0].named_buffers() if b is not None and b.is_floating_point()}
    return params, buffers


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """(S, N, in) @ (S, out, in)^T (+ (S, out)): one batched matmul for all seeds."""
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


class StackedNet:
    """A project module's `body` run for S seeds at once on stacked parameters: walks the Sequential and does
    each layer as a batched op (Linear, Maxout, the four norms, ReLU / LeakyReLU)."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.template = modules[0]
        self.params, self.buffers = _stack(modules)
        self.training = True

    def _norm(self, prefix: str, module: nn.Module, h: Tensor, n_ref: int) -> Tensor:
        if isinstance(module, NoNorm):
            return h
        gamma, beta = self.params[prefix + "weight"].unsqueeze(1), self.params[prefix + "bias"].unsqueeze(1)
        if isinstance(module, BatchNorm):
            rm, rv = self.buffers[prefix + "running_mean"], self.buffers[prefix + "running_var"]
            if self.training:
                var, mean = torch.var_mean(h, dim=1, correction=0)
                with torch.no_grad():
                    n = h.shape[1]
                    rm.mul_(1 - module.momentum).add_(module.momentum * mean)
                    rv.mul_(1 - module.momentum).add_(module.momentum * n / (n - 1) * var)
                mean, var = mean.unsqueeze(1), var.unsqueeze(1)
            else:
                mean, var = rm.unsqueeze(1), rv.unsqueeze(1)
            return (h - mean) * (gamma * torch.rsqrt(var + module.eps)) + beta
        ref = h[:, :n_ref]
        ref_var, ref_mean = torch.var_mean(ref, dim=1, correction=0, keepdim=True)
        if isinstance(module, ReferenceBatchNorm):
            return (h - ref_mean) * (gamma * torch.rsqrt(ref_var + module.eps)) + beta
        assert isinstance(module, VirtualBatchNorm)
        mini, new = h[:, n_ref:], 1.0 / (n_ref + 1.0)
        mean = (1 - new) * ref_mean + new * mini  # the example is its own mean: VirtualBatchNorm._union_moments
        var = (1 - new) * (ref_var + (ref_mean - mean) ** 2) + new * (mini - mean) ** 2
        ref_out = (ref - ref_mean) * (gamma * torch.rsqrt(ref_var + module.eps)) + beta
        return torch.cat([ref_out, (mini - mean) * (gamma * torch.rsqrt(var + module.eps)) + beta], dim=1)

    def body(self, h: Tensor, n_ref: int = 0) -> Tensor:
        for index, module in enumerate(self.template.body):
            prefix = f"body.{index}."
            if isinstance(module, nn.Linear):
                h = _linear(h, self.params[prefix + "weight"], self.params.get(prefix + "bias"))
            elif isinstance(module, Maxout):
                h = _linear(h, self.params[prefix + "linear.weight"], self.params[prefix + "linear.bias"])
                h = h.unflatten(-1, (module.units, module.pieces)).amax(-1)
            elif isinstance(module, nn.ReLU):
                h = torch.relu(h)
            elif isinstance(module, nn.LeakyReLU):
                h = F.leaky_relu(h, module.negative_slope)
            elif isinstance(module, (BatchNorm, NoNorm, ReferenceBatchNorm, VirtualBatchNorm)):
                h = self._norm(prefix, module, h, n_ref)
            else:
                raise TypeError(f"no stacked form for {type(module).__name__}")
        return h

    def embed(self, name: str, y: Tensor) -> Tensor:
        """Per-seed embedding rows: table (S, C, E), y (S, N) -> (S, N, E)."""
        table = self.params[name]
        return torch.gather(table, 1, y.unsqueeze(-1).expand(-1, -1, table.shape[-1]))

    def unstack(self, modules: list[nn.Module]) -> list[nn.Module]:
        """Copy seed s's parameters and buffers into modules[s] (fresh single-seed modules of the same build)."""
        with torch.no_grad():
            for s, m in enumerate(modules):
                for name, p in m.named_parameters():
                    p.copy_(self.params[name][s])
                for name, b in m.named_buffers():
                    if name in self.buffers:
                        b.copy_(self.buffers[name][s])
        return modules


class StackedGenerator(StackedNet):
    def __init__(self, modules: list[MLPGenerator], reference_z: Tensor | None,
                 reference_labels: Tensor | None) -> None:
        super().__init__(modules)
        self.conditional = modules[0].conditional
        self.norm = modules[0].norm
        self.reference_z, self.reference_labels = reference_z, reference_labels

    def code(self, z: Tensor, y: Tensor | None) -> Tensor:
        return torch.cat([z, self.embed("embed.weight", y)], dim=-1) if self.conditional else z

    def __call__(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if not uses_reference(self.norm):
            return self.body(self.code(z, y))
        n_ref = self.reference_z.shape[1]
        ref = self.code(self.reference_z.to(z.dtype), self.reference_labels)
        return self.body(torch.cat([ref, self.code(z, y)], dim=1), n_ref)[:, n_ref:]


class StackedDiscriminator(StackedNet):
    def __init__(self, modules: list[MaxoutDiscriminator]) -> None:
        super().__init__(modules)
        self.conditional = modules[0].embed is not None

    def __call__(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        phi = self.body(x)
        out = _linear(phi, self.params["head.weight"], self.params["head.bias"]).squeeze(-1)
        if self.conditional:
            out = out + (self.embed("embed.weight", y) * phi).sum(-1)
        return out


@dataclass
class StackedGAN:
    config: StackConfig
    generator: StackedGenerator
    discriminator: StackedDiscriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    rngs: list[torch.Generator]
    data: SeedData
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def num_seeds(self) -> int:
        return len(self.config.seeds)


def build_stack(config: StackConfig, data: SeedData | None = None) -> StackedGAN:
    data = data or seed_data(config)
    gs, ds = [], []
    for s, seed in enumerate(config.seeds):
        g, d = build_players(config, seed, data.reference_z[s], data.reference_labels[s])
        gs.append(g), ds.append(d)
    ref_z = data.reference_z if uses_reference(config.norm) else None
    ref_y = data.reference_labels if uses_reference(config.norm) and config.labels else None
    generator, discriminator = StackedGenerator(gs, ref_z, ref_y), StackedDiscriminator(ds)
    training, cpu = config.training(), torch.device("cpu")
    opt_g = make_optimizer(list(generator.params.values()), config.lr_g, training, cpu)
    opt_d = make_optimizer(list(discriminator.params.values()), config.lr_d, training, cpu)
    rngs = [torch.Generator().manual_seed(seed) for seed in config.seeds]  # new_state's rng, per seed
    return StackedGAN(config, generator, discriminator, opt_g, opt_d, rngs, data)


def _draw(stack: StackedGAN) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each seed's minibatch from its own stream, in sample_real / sample_fake's order: (x, y, z, y_fake)."""
    c, n = stack.config, stack.data.points.shape[1]
    classes = NUM_MODES[c.dataset]  # as the pipeline's run: fake labels over the modes (unused unconditional)
    index, z, y_fake = [], [], []
    for rng in stack.rngs:
        index.append(torch.randint(n, (c.batch_size,), generator=rng))
        z.append(torch.randn(c.batch_size, c.z_dim, generator=rng))
        y_fake.append(torch.randint(classes, (c.batch_size,), generator=rng))
    index = torch.stack(index)
    x = torch.gather(stack.data.points, 1, index.unsqueeze(-1).expand(-1, -1, 2))
    return x, torch.gather(stack.data.labels, 1, index), torch.stack(z), torch.stack(y_fake)


def _d_cost(stack: StackedGAN, x: Tensor, y: Tensor, fake: Tensor, y_fake: Tensor) -> tuple[Tensor, Tensor]:
    d, c = stack.discriminator, stack.config
    real_logits, fake_logits = d(x, y), d(fake, y_fake)
    # x S: the cost averages over all S x batch logits; each seed's own cost is the mean over its batch
    loss = stack.num_seeds * discriminator_loss(real_logits, fake_logits, 1.0 - c.label_smoothing, 0.0)
    return loss, real_logits


def _g_cost(stack: StackedGAN, fake: Tensor, y_fake: Tensor) -> tuple[Tensor, Tensor]:
    logits = stack.discriminator(fake, y_fake)
    return stack.num_seeds * generator_loss(stack.config.generator_loss, logits), logits


def _set_grads(params: dict[str, Tensor], loss: Tensor) -> None:
    tensors = list(params.values())
    for p, g in zip(tensors, torch.autograd.grad(loss, tensors)):
        # contiguous: the grad of a weight used transposed (bmm) comes back transposed, and fused Adam (torch
        # 2.14, CPU) reads a grad whose strides differ from its parameter's as if they matched: wrong updates
        p.grad = g.contiguous()


def _set_lr(stack: StackedGAN) -> None:
    c = stack.config
    if c.lr_decay_to == 1.0:
        return
    factor = 1.0 + (c.lr_decay_to - 1.0) * stack.step / max(c.steps - 1, 1)
    for opt, lr in ((stack.opt_g, c.lr_g), (stack.opt_d, c.lr_d)):
        for group in opt.param_groups:
            group["lr"] = lr * factor


def stacked_step(stack: StackedGAN) -> Tensor:
    """One training step of every seed; returns (S, 2) per-seed (loss_d, loss_g)."""
    c, g = stack.config, stack.generator
    _set_lr(stack)
    if c.update == "simultaneous":
        x, y, z, y_fake = _draw(stack)
        fake = g(z, y_fake)
        loss_d, _ = _d_cost(stack, x, y, fake.detach(), y_fake)
        loss_g, _ = _g_cost(stack, fake, y_fake)
        _set_grads(stack.discriminator.params, loss_d)
        _set_grads(g.params, loss_g)
        stack.opt_d.step()
        stack.opt_g.step()
    else:
        for k in range(c.d_steps):
            last = k == c.d_steps - 1
            x, y, z, y_fake = _draw(stack)
            with torch.set_grad_enabled(last):
                fake = g(z, y_fake)
            loss_d, _ = _d_cost(stack, x, y, fake.detach(), y_fake)
            stack.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            stack.opt_d.step()
        loss_g, _ = _g_cost(stack, fake, y_fake)
        _set_grads(g.params, loss_g)
        stack.opt_g.step()
    stack.step += 1
    return torch.stack([loss_d.detach(), loss_g.detach()]) / stack.num_seeds


def train_stack(stack: StackedGAN, steps: int | None = None, seconds_budget: float | None = None,
                evaluate_every: int = 0, on_eval: Callable[[int, list[dict]], None] | None = None) -> float:
    """Train to `steps` (the config's by default) or until `seconds_budget` runs out; returns seconds spent."""
    steps = stack.config.steps if steps is None else steps
    start = time.perf_counter()
    while stack.step < steps:
        stacked_step(stack)
        if evaluate_every and stack.step % evaluate_every == 0 and on_eval is not None:
            on_eval(stack.step, evaluate(stack))
        if seconds_budget is not None and time.perf_counter() - start > seconds_budget:
            break
    return time.perf_counter() - start


@torch.no_grad()
def sample(stack: StackedGAN, n: int = PACGAN_EVAL_SAMPLES, seed_offset: int = 1_000_003) -> Tensor:
    """(S, n, 2) samples per seed from its own evaluation z (batch norm: running statistics, the project's
    default `evaluation.sampling: eval`; reference / virtual BN normalise with the reference z as in training)."""
    c, g = stack.config, stack.generator
    z = torch.stack([torch.randn(n, c.z_dim, generator=torch.Generator().manual_seed(seed + seed_offset))
                     for seed in c.seeds])
    y = (torch.arange(n) % NUM_MODES[c.dataset]).expand(len(c.seeds), n) if c.labels else None
    g.training = False
    try:
        return g(z, y)
    finally:
        g.training = True


def evaluate(stack: StackedGAN, n: int = PACGAN_EVAL_SAMPLES) -> list[dict[str, float]]:
    """The project's `modes` metric (PacGAN's protocol: n samples, 3 std, reverse KL vs uniform) per seed."""
    centers, std = mixture_modes(stack.config.dataset)
    ctx = MetricContext(class_prior=torch.ones(1), mode_centers=centers, mode_std=std)
    out = []
    for points in sample(stack, n):
        evidence = Evidence(features=torch.zeros(n, 1), probs=torch.ones(n, 1), points=points.double())
        out.append(modes(evidence, evidence, ctx))
    return out


# ------------------------------------------------------------------------- the project's loop, one seed at a time


def single_states(config: StackConfig, data: SeedData | None = None) -> tuple[list[GanState], list[TrainingData]]:
    """The same seeds as separate GanStates for the project's own step functions (the 'before' of the speed
    comparison, and the reference the stacked trainer is tested against)."""
    data = data or seed_data(config)
    states, datas = [], []
    training, cpu = config.training(), torch.device("cpu")
    classes = NUM_MODES[config.dataset]
    for s, seed in enumerate(config.seeds):
        g, d = build_players(config, seed, data.reference_z[s], data.reference_labels[s])
        states.append(new_state(g, d, training, seed, cpu, classes))
        datas.append(TrainingData(data.points[s], data.labels[s]))
    return states, datas


def train_single(states: list[GanState], datas: list[TrainingData], config: StackConfig, steps: int) -> float:
    """`steps` steps of each seed in turn with the project's step function; returns seconds."""
    training, step_fn = config.training(), STEP_FUNCTIONS[config.update]
    start = time.perf_counter()
    for state, data in zip(states, datas):
        state.generator.train(), state.discriminator.train()
        for _ in range(steps):
            step_fn(state, data, training)
            state.step += 1
    return time.perf_counter() - start
