"""Scoring checkpoints: generate, embed with the evaluator, measure against the real train split.

One row per checkpoint plus a `real_floor` row (held-out split against the train split), so every
number is read beside what real data scores. Only the checkpoints a manifest names are scored. A model family
with a likelihood also scores the held-out split's `bits_per_dim` (the real floor has none).
2-D mixtures are scored the same way on their coordinates (no pixels, so no pixel metrics), and always
with PacGAN's mode metrics against the mixture's known centres (`metrics.scored_metrics`).
Everything runs on one device (devices.py): samples are drawn and embedded there a chunk at a time, and only
their features, probabilities and (for a pixel metric) pixels are kept; the numbers that leave are floats.
With `evaluation.inception`, the `*_inception` columns are measured in the FID Inception network's features against
the real data's, which are computed once per dataset, weights and resize and stored (inception_stats.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gan_assets.core.config import PIXEL_METRICS, EvaluationConfig
from gan_assets.core.data.images import ImageSet, PointSet
from gan_assets.core.data.reference import ReferenceBatch
from gan_assets.core.data.sources.mixtures import modes_of
from gan_assets.core.evaluation.classifier import Classifier, embed
from gan_assets.core.evaluation.devices import CPU, module_device, placed
from gan_assets.core.evaluation.inception_stats import RealInceptionFeatures, real_inception_features, stats_folder
from gan_assets.core.evaluation.loading import load_generator, load_model
from gan_assets.core.evaluation.metrics import (
    Evidence,
    MetricContext,
    compute_metrics,
    frechet_distance_from_stats,
    gaussian_stats,
    median_nearest_distance,
    scored_metrics,
)
from gan_assets.core.evaluation.metrics.inception import InceptionExtractor, load_inception
from gan_assets.core.evaluation.sampling import class_labels, generated_chunks
from gan_assets.core.models.families import family_of
from gan_assets.core.models.gan.networks import Generator, model_input
from gan_assets.core.runtime.faults import crash_point
from gan_assets.core.runtime.threads import adapt_to_load
from gan_assets.core.training.manifest import CheckpointEntry, RunManifest

REAL_FLOOR = "real_floor"  # the score row of held-out real data: every number is read beside it

# Scores use their own z stream, apart from training's and the gallery's reference z.
SCORING_SEED_OFFSET = 7919
SCORING_CHUNK = 500  # samples generated and embedded at a time: one chunk of images is held, not num_samples
LIKELIHOOD_BATCH = 256  # held-out images per likelihood pass


def evidence_of(classifier: Classifier, images: torch.Tensor, pixels: bool = True) -> Evidence:
    """Float images in [-1, 1] → what the metrics see (features, class probabilities, pixels in [0, 1] unless
    `pixels` is false); (N, 2) points → features, probabilities and the coordinates themselves. On the images'
    device."""
    features, probs = embed(classifier, images)
    if images.ndim == 2:
        return Evidence(features.double(), probs.double(), points=images.double())
    return Evidence(features.double(), probs.double(),
                    pixels=images.flatten(1).add(1).div(2).double() if pixels else None)


def scoring_chunks(generator: Generator, num_samples: int, seed: int) -> Iterator[torch.Tensor]:
    """`num_samples` images from a fixed z stream, SCORING_CHUNK at a time on G's device; a conditional G cycles
    through the classes. z is drawn on the CPU, so every device scores the same z."""
    z = torch.randn(num_samples, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    return generated_chunks(generator, z, class_labels(generator, num_samples), SCORING_CHUNK)


def real_context(classifier: Classifier, data: ImageSet | PointSet,
                 seed: int) -> tuple[Evidence, Evidence, MetricContext]:
    """Evidence of the train and held-out splits, on the classifier's device, and the context every metric
    shares."""
    train, held_out = data.subset("train"), data.subset("held_out")
    device = module_device(classifier)
    train_ev = evidence_of(classifier, model_input(torch.from_numpy(train.examples)).to(device))
    held_ev = evidence_of(classifier, model_input(torch.from_numpy(held_out.examples)).to(device))
    prior = torch.bincount(torch.from_numpy(train.labels), minlength=len(data.class_names)).double()
    if isinstance(data, PointSet):  # the mixture's true modes, not estimates from the samples
        centers, std = modes_of(data)
        ctx = MetricContext(class_prior=prior / prior.sum(), seed=seed, mode_centers=centers, mode_std=std)
    else:
        ctx = MetricContext(class_prior=prior / prior.sum(), seed=seed,
                            heldout_nn_distance=median_nearest_distance(held_ev.pixels, train_ev.pixels))
    return train_ev, held_ev, ctx


def score_checkpoints(manifest: RunManifest, *, classifier: Classifier, data: ImageSet | PointSet,
                      evaluation: EvaluationConfig, reference: ReferenceBatch, seed: int,
                      device: torch.device = CPU) -> pd.DataFrame:
    """Every metric of `evaluation.metrics` (as `scored_metrics` adapts them to the data) for each checkpoint
    the manifest names, then the real floor; the networks and metrics run on `device`."""
    adapt_to_load()  # as many threads as there are CPUs free now
    classifier = placed(classifier, device)
    train_ev, held_ev, ctx = real_context(classifier, data, seed)
    metrics, rows = scored_metrics(evaluation.metrics, isinstance(data, PointSet)), []
    pixels = any(name in PIXEL_METRICS for name in metrics)
    inception = inception_scorer(evaluation, data, device, ctx=ctx, stats_dir=stats_folder(manifest.run_dir))
    for entry in manifest.checkpoints:
        crash_point("score_checkpoint")
        generator = load_generator(manifest, entry, evaluation.sampling, *reference.tensors(), device=device,
                                   weights=evaluation.generator)
        samples, pool = sample_evidence(classifier, scoring_chunks(generator, evaluation.num_samples,
                                                                   seed + SCORING_SEED_OFFSET), pixels, inception)
        rows.append({"name": entry.name, "step": entry.step, **compute_metrics(metrics, samples, train_ev, ctx),
                     **inception.scores(pool), **held_out_likelihood(manifest, entry, data, seed, device)})
    rows.append({"name": REAL_FLOOR, "step": None, **compute_metrics(metrics, held_ev, train_ev, ctx),
                 **inception.real_floor()})
    frame = pd.DataFrame(rows)
    frame["step"] = frame["step"].astype("Int64")
    return frame


def sample_evidence(classifier: Classifier, chunks: Iterable[torch.Tensor], pixels: bool,
                    inception: InceptionScorer) -> tuple[Evidence, torch.Tensor | None]:
    """The evidence of generated samples (and their Inception features, when scored), embedded chunk by chunk
    as they are drawn: only what the metrics read is kept, never all the images."""
    parts, pools = [], []
    for images in chunks:
        parts.append(evidence_of(classifier, images, pixels))
        pools.append(inception.features(images))
        del images  # before the next chunk is drawn: one chunk of images at a time
    return Evidence.cat(parts), None if inception.extractor is None else torch.cat(pools)


def held_out_likelihood(manifest: RunManifest, entry: CheckpointEntry, data: ImageSet | PointSet,
                        seed: int, device: torch.device = CPU) -> dict[str, float]:
    """{"bits_per_dim": mean over the held-out split} for a family that scores log-likelihood (exact for the FVBN
    and Real NVP, the ELBO bound for the VAE); nothing for the GAN, which has none. Computed on `device`."""
    if manifest.model.family == "gan":
        return {}
    family, model = family_of(manifest.model), load_model(manifest, entry, device)
    # the VAE's z and Real NVP's dequantisation: the families draw them on the images' device, so from its stream
    rng = torch.Generator(device=device).manual_seed(seed + SCORING_SEED_OFFSET)
    images = torch.from_numpy(data.subset("held_out").examples)
    return {"bits_per_dim": float(torch.cat([family.bits_per_dim(model, chunk.to(device), rng)
                                             for chunk in images.split(LIKELIHOOD_BATCH)]).mean())}


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no truth value, so no __eq__
class InceptionScorer:
    """The `*_inception` columns: `metrics` (registry keys) measured in the FID Inception network's pool features
    against the train split's; without an extractor, scores nothing."""

    extractor: InceptionExtractor | None = None
    real: RealInceptionFeatures | None = None  # the real splits' features and the train split's statistics
    metrics: tuple[str, ...] = ("fd",)
    ctx: MetricContext | None = None  # KID's seed and subsets, precision/recall's k: the evaluator's, shared

    def features(self, images: torch.Tensor) -> torch.Tensor | None:
        return None if self.extractor is None else self.extractor.features(images)

    def scores(self, features: torch.Tensor | None) -> dict[str, float]:
        """fd from the stored reference statistics (never the train covariance again), the other metrics by the same
        registry functions as the evaluator's columns, on Inception features; every column suffixed `_inception`."""
        if features is None:
            return {}
        values = {}
        if "fd" in self.metrics:
            mu, sigma = self.real.mu.to(features.device), self.real.sigma.to(features.device)
            values["fd"] = frechet_distance_from_stats(*gaussian_stats(features), mu, sigma)
        others = [name for name in self.metrics if name != "fd"]
        if others:
            values |= compute_metrics(others, pool_evidence(features), pool_evidence(self.real.train), self.ctx)
        return {f"{column}_inception": value for column, value in values.items()}

    def real_floor(self) -> dict[str, float]:
        """The held-out split's scores, from its stored features."""
        return {} if self.extractor is None else self.scores(self.real.held_out.double())

    def __call__(self, images: torch.Tensor) -> dict[str, float]:
        return self.scores(self.features(images))


def pool_evidence(features: torch.Tensor) -> Evidence:
    """Pool features as the registry's metrics read them; the class probabilities are a placeholder column (the
    distance metrics read features only, and Inception's classes are not the data's)."""
    return Evidence(features.double(), features.new_ones(features.shape[0], 1).double())


def inception_scorer(evaluation: EvaluationConfig, data: ImageSet | PointSet, device: torch.device = CPU, *,
                     ctx: MetricContext | None = None, stats_dir: Path | None = None) -> InceptionScorer:
    """Inception on `device` when a checked local weights file is configured, with the real data's features read from
    (or first stored into) `stats_dir`; else a scorer of nothing. `ctx` None: the default KID subsets and k."""
    if evaluation.inception.weights is None or isinstance(data, PointSet):
        return InceptionScorer()
    extractor = load_inception(evaluation.inception.weights, evaluation.inception.sha256, evaluation.inception.resize,
                               device)
    real = real_inception_features(extractor, data, stats_dir)
    return InceptionScorer(extractor, real, evaluation.inception_metrics,
                           ctx or MetricContext(class_prior=torch.ones(1, dtype=torch.float64)))


def best_row(scores: pd.DataFrame, metric: str, direction: str) -> pd.Series:
    """The best checkpoint row (the real floor never competes)."""
    candidates = scores[scores["name"] != REAL_FLOOR]
    values = candidates[metric].to_numpy(dtype=np.float64)
    pick = np.nanargmin(values) if direction == "min" else np.nanargmax(values)
    return candidates.iloc[int(pick)]


def frame_hash(frame: pd.DataFrame) -> str:
    """sha256 of a table's values: the data version of score tables."""
    return hashlib.sha256(frame.to_json(orient="split", double_precision=15).encode()).hexdigest()


def real_floor_row(scores: pd.DataFrame) -> pd.Series:
    return scores[scores["name"] == REAL_FLOOR].iloc[0]
