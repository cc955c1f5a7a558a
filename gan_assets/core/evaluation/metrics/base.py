"""What every metric receives: the evaluator's view of two sample sets, and the knobs.

Both dataclasses validate shapes on construction, so a metric never has to guess why a
matmul failed three calls deep (shape asserts at boundaries).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import torch

from gan_assets.core.config import PRECISION_RECALL_K


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value, so no __eq__
class Evidence:
    """What the evaluator saw of one set of samples."""

    features: torch.Tensor  # (n, d) penultimate-layer features of the evaluator
    probs: torch.Tensor  # (n, K) predicted class probabilities (softmax)
    pixels: torch.Tensor | None = None  # (n, P) flattened images in [0, 1], for memorisation
    points: torch.Tensor | None = None  # (n, 2) coordinates, for 2-D mixture datasets

    def __post_init__(self) -> None:
        n = _rows(self.features, "features")
        if _rows(self.probs, "probs") != n:
            raise ValueError(f"probs has {self.probs.shape[0]} rows, features has {n}")
        if self.pixels is not None and _rows(self.pixels, "pixels") != n:
            raise ValueError(f"pixels has {self.pixels.shape[0]} rows, features has {n}")
        if self.points is not None and (_rows(self.points, "points") != n or self.points.shape[1] != 2):
            raise ValueError(f"points must be ({n}, 2), got {tuple(self.points.shape)}")

    @property
    def n(self) -> int:
        return self.features.shape[0]

    def to(self, device: torch.device) -> Evidence:
        """This evidence with every tensor on `device`."""
        return replace(self, **_tensors_on(self, device))

    @staticmethod
    def cat(parts: Sequence[Evidence]) -> Evidence:
        """One evidence of the rows of `parts`, in order (chunks embedded one at a time)."""
        columns = {f.name: [getattr(p, f.name) for p in parts] for f in fields(Evidence)}
        return Evidence(**{name: None if ts[0] is None else torch.cat(ts) for name, ts in columns.items()})


def _rows(t: torch.Tensor, name: str) -> int:
    if not isinstance(t, torch.Tensor) or t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor (n, ·), got {getattr(t, 'shape', type(t))}")
    return t.shape[0]


@dataclass(frozen=True, eq=False)
class MetricContext:
    """Everything a metric needs besides the two evidence sets."""

    class_prior: torch.Tensor  # (K,) class histogram of the real train split (sums to 1)
    seed: int = 0  # seeds KID's subset sampling: metrics are deterministic for a fixed seed
    kid_subsets: int = 100  # number of random subsets KID averages over (torch-fidelity's default)
    kid_subset_size: int = 1000  # subset size, clipped to the smaller of the two sets
    pr_k: int = PRECISION_RECALL_K  # k of the k-NN manifolds of improved precision/recall (Kynkäänniemi et al.)
    coverage_threshold: float = 0.02  # a class is covered when >= 2% of samples are predicted as it
    mode_centers: torch.Tensor | None = None  # (M, 2) centers of a 2-D mixture
    mode_std: float | None = None  # per-coordinate std of each (isotropic) mixture component
    heldout_nn_distance: float | None = None  # median held-out→nearest-train pixel distance

    def __post_init__(self) -> None:
        prior = self.class_prior
        if not isinstance(prior, torch.Tensor) or prior.ndim != 1:
            raise ValueError("class_prior must be a 1-D tensor (K,)")
        if (prior < 0).any() or abs(float(prior.double().sum()) - 1.0) > 1e-4:
            raise ValueError("class_prior must be non-negative and sum to 1")
        if self.kid_subsets < 1 or self.kid_subset_size < 2 or self.pr_k < 1:
            raise ValueError("need kid_subsets >= 1, kid_subset_size >= 2, pr_k >= 1")
        if not 0.0 < self.coverage_threshold <= 1.0:
            raise ValueError(f"coverage_threshold must lie in (0, 1], got {self.coverage_threshold}")
        if self.mode_centers is not None and (self.mode_centers.ndim != 2 or self.mode_centers.shape[1] != 2):
            raise ValueError(f"mode_centers must be (M, 2), got {tuple(self.mode_centers.shape)}")
        if self.mode_std is not None and not self.mode_std > 0:
            raise ValueError(f"mode_std must be positive, got {self.mode_std}")
        if self.heldout_nn_distance is not None and not self.heldout_nn_distance > 0:
            raise ValueError("heldout_nn_distance must be positive (held-out images duplicating train?)")

    def to(self, device: torch.device) -> MetricContext:
        """This context with every tensor (class_prior, mode_centers) on `device`. Moving changes no value, so the
        checks above are not run again: they read values, which a meta or fake tensor used in tests has not."""
        moved = copy.copy(self)
        for name, tensor in _tensors_on(self, device).items():
            object.__setattr__(moved, name, tensor)  # frozen: set as the dataclass itself does
        return moved


def _tensors_on(instance: object, device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor field of a dataclass instance, moved to `device` (fields added later follow by themselves)."""
    return {f.name: value.to(device) for f in fields(instance)
            if isinstance(value := getattr(instance, f.name), torch.Tensor)}


# (samples, real, ctx) -> named numbers; one metric may return several columns.
MetricFn = Callable[[Evidence, Evidence, MetricContext], dict[str, float]]
