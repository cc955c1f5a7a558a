"""What the gallery shows of one checkpoint beyond its fixed-z grid.

- per-class rows: a conditional G asked for each class; an unconditional G's samples grouped by the
  evaluator's predicted class, with each class's share (is a class missing or over-produced?);
- latent interpolations between fixed pairs of z, linear and spherical (is the latent space smooth?);
- nearest training neighbours of generated samples in the evaluator's feature space, with distances
  (does the model copy its data?);
- the tutorial's batch-dependence demonstration (§4.3): the same z generated alone and inside two
  different minibatches, under train-mode, eval-mode and reference batch norm.

Every function takes what it draws from explicitly (z, seeds), so a view is the same image every time.
The networks run where their weights are; z is drawn on the CPU and what is shown comes back there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gan_assets.core.evaluation.classifier import Classifier, embed
from gan_assets.core.evaluation.devices import module_device
from gan_assets.core.evaluation.sampling import class_labels, generate
from gan_assets.core.models.gan.networks import Generator, model_input
from gan_assets.core.png import grid_array

GROUPING_SAMPLES_PER_CLASS = 40  # an unconditional G draws this many per class, then the evaluator sorts them
NEIGHBOUR_POOL = 20_000  # training images searched for neighbours: a seeded subset of a larger set
BATCH_CONTEXT = 56  # other z in each minibatch around the targets of the batch-dependence demonstration


@dataclass(frozen=True)
class ClassRow:
    name: str
    grid: np.ndarray | None  # one row of samples; None: no sample was predicted to be this class
    share: float | None  # fraction of samples predicted this class (unconditional G); None: asked for (conditional)


@dataclass(frozen=True)
class Neighbours:
    grid: np.ndarray  # a row per sample: the sample, then its nearest training images, nearest first
    distances: np.ndarray  # (samples, k) feature-space L2 distances, row by row as drawn


@dataclass(frozen=True)
class BatchDependence:
    mode: str  # "train", "eval" or "reference": how batch norm normalised
    grid: np.ndarray  # a row per context (alone, minibatch A, minibatch B), the same target z in each column
    differences: dict[str, float]  # "alone vs A", "alone vs B", "A vs B": mean |Δ| in grey levels (0..255)


def seeded_z(n: int, z_dim: int, seed: int) -> Tensor:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def class_rows(generator: Generator, *, classifier: Classifier, class_names: tuple[str, ...], per_class: int,
               seed: int) -> list[ClassRow]:
    """One row of `per_class` samples per class (see the module docstring for how each kind of G fills them)."""
    if generator.conditional:
        z = seeded_z(per_class, generator.z_dim, seed)
        return [ClassRow(name, grid_array(generate(generator, z, torch.full((per_class,), c)), nrow=per_class), None)
                for c, name in enumerate(class_names)]
    n = GROUPING_SAMPLES_PER_CLASS * max(len(class_names), 1)
    images = generate(generator, seeded_z(n, generator.z_dim, seed))
    _, probs = embed(classifier, images)
    confidence, predicted = probs.max(dim=1)
    rows = []
    for c, name in enumerate(class_names):
        members = torch.nonzero(predicted == c).flatten()
        members = members[confidence[members].argsort(descending=True)][:per_class]  # the clearest first
        grid = grid_array(images[members], nrow=per_class) if len(members) else None
        rows.append(ClassRow(name, grid, float((predicted == c).float().mean())))
    return rows


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation (rows of a, b; t in [0, 1] as a column): follows the prior's shell, where a
    straight line between two samples of a high-dimensional Gaussian cuts through its improbable centre."""
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1, 1).unsqueeze(-1)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    straight = sin.abs() < 1e-6  # (anti)parallel: the arc is the line
    safe = torch.where(straight, torch.ones_like(sin), sin)
    arc = torch.sin((1 - t) * omega) / safe * a + torch.sin(t * omega) / safe * b
    return torch.where(straight, (1 - t) * a + t * b, arc)


@torch.no_grad()
def interpolations(generator: Generator, *, pairs: int, steps: int, seed: int) -> dict[str, np.ndarray]:
    """{"linear", "spherical"}: a row per fixed pair of z, `steps` images from one end to the other (a
    conditional G keeps one class per row)."""
    ends = seeded_z(2 * pairs, generator.z_dim, seed).view(pairs, 2, generator.z_dim)
    t = torch.linspace(0, 1, steps).view(1, steps, 1)
    a, b = ends[:, :1], ends[:, 1:]
    paths = {"linear": (1 - t) * a + t * b, "spherical": slerp(a.expand(-1, steps, -1), b.expand(-1, steps, -1), t)}
    labels = (torch.arange(pairs).repeat_interleave(steps) % generator.num_classes) if generator.conditional else None
    return {name: grid_array(generate(generator, z.reshape(-1, generator.z_dim), labels), nrow=steps)
            for name, z in paths.items()}


@torch.no_grad()
def nearest_neighbours(samples: Tensor, train_images: np.ndarray, *, classifier: Classifier, k: int,
                       seed: int) -> Neighbours:
    """The `k` training images nearest each sample in the evaluator's features (a seeded pool of at most
    NEIGHBOUR_POOL of them, so a large dataset costs a bounded search)."""
    if len(train_images) > NEIGHBOUR_POOL:
        pick = np.random.default_rng(seed).choice(len(train_images), NEIGHBOUR_POOL, replace=False)
        train_images = train_images[np.sort(pick)]
    real = model_input(torch.from_numpy(train_images))
    sample_features, _ = embed(classifier, samples)
    real_features, _ = embed(classifier, real)
    distances, index = torch.cdist(sample_features.double(), real_features.double()).topk(k, dim=1, largest=False)
    rows = torch.cat([torch.cat([s[None], real[i]]) for s, i in zip(samples, index)])
    return Neighbours(grid_array(rows, nrow=k + 1), distances.float().numpy())


CONTEXT_NAMES = ("alone", "A", "B")


@torch.no_grad()
def batch_dependence(generators: dict[str, Generator], *, targets: int, seed: int) -> list[BatchDependence]:
    """§4.3: `targets` fixed z, generated alone, then as the first rows of two minibatches whose other
    BATCH_CONTEXT z differ, by each of `generators` (mode → the checkpoint's G set up for that mode).
    Under train-mode BN each minibatch normalises itself, so the same z gives a different image; eval-mode and
    reference BN fix the statistics, so it gives the same one."""
    any_g = next(iter(generators.values()))
    z = seeded_z(targets, any_g.z_dim, seed)
    contexts = {"alone": z, "A": torch.cat([z, seeded_z(BATCH_CONTEXT, any_g.z_dim, seed + 1)]),
                "B": torch.cat([z, seeded_z(BATCH_CONTEXT, any_g.z_dim, seed + 2)])}
    views = []
    for mode, generator in generators.items():
        # one forward per context: the minibatch is the unit batch norm normalises over
        images = {name: generator(batch.to(module_device(generator)), class_labels(generator, len(batch)))[:targets]
                  for name, batch in contexts.items()}
        grey = {name: (x.clamp(-1, 1) + 1) * 127.5 for name, x in images.items()}
        differences = {f"{a} vs {b}": float((grey[a] - grey[b]).abs().mean())
                       for a, b in (("alone", "A"), ("alone", "B"), ("A", "B"))}
        views.append(BatchDependence(mode, grid_array(torch.cat(list(images.values())), nrow=targets), differences))
    return views
