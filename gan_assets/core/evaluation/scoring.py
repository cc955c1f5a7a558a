"""Scoring checkpoints: generate, embed with the evaluator, measure against the real train split.

One row per checkpoint plus a `real_floor` row (held-out split against the train split), so every
number is read beside what real data scores. Only the checkpoints a manifest names are scored. A model family
with a likelihood also scores the held-out split's `bits_per_dim` (the real floor has none).
2-D mixtures are scored the same way on their coordinates (no pixels, so no pixel metrics), and always
with PacGAN's mode metrics against the mixture's known centres (`metrics.scored_metrics`).
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np
import pandas as pd
import torch

from gan_assets.core.config import EvaluationConfig
from gan_assets.core.data.images import ImageSet, PointSet
from gan_assets.core.data.reference import ReferenceBatch
from gan_assets.core.data.sources.mixtures import modes_of
from gan_assets.core.evaluation.classifier import Classifier, embed
from gan_assets.core.evaluation.loading import load_generator, load_model
from gan_assets.core.evaluation.metrics import Evidence, MetricContext, compute_metrics, median_nearest_distance, scored_metrics
from gan_assets.core.evaluation.metrics.inception import inception_fd, load_inception
from gan_assets.core.evaluation.sampling import class_labels, generate
from gan_assets.core.models.families import family_of
from gan_assets.core.models.gan.networks import Generator, model_input
from gan_assets.core.runtime.faults import crash_point
from gan_assets.core.runtime.threads import adapt_to_load
from gan_assets.core.training.manifest import CheckpointEntry, RunManifest

REAL_FLOOR = "real_floor"  # the score row of held-out real data: every number is read beside it

# Scores use their own z stream, apart from training's and the gallery's reference z.
SCORING_SEED_OFFSET = 7919
LIKELIHOOD_BATCH = 256  # held-out images per likelihood pass


def evidence_of(classifier: Classifier, images: torch.Tensor) -> Evidence:
    """Float images in [-1, 1] → what the metrics see (features, class probabilities, pixels in [0, 1]);
    (N, 2) points → features, probabilities and the coordinates themselves."""
    features, probs = embed(classifier, images)
    if images.ndim == 2:
        return Evidence(features.double(), probs.double(), points=images.double())
    return Evidence(features.double(), probs.double(), pixels=images.flatten(1).add(1).div(2).double())


def scoring_samples(generator: Generator, num_samples: int, seed: int) -> torch.Tensor:
    """`num_samples` images from a fixed z stream; a conditional G cycles through the classes."""
    z = torch.randn(num_samples, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    return generate(generator, z, class_labels(generator, num_samples))


def real_context(classifier: Classifier, data: ImageSet | PointSet,
                 seed: int) -> tuple[Evidence, Evidence, MetricContext]:
    """Evidence of the train and held-out splits, and the context every metric shares."""
    train, held_out = data.subset("train"), data.subset("held_out")
    train_ev = evidence_of(classifier, model_input(torch.from_numpy(train.examples)))
    held_ev = evidence_of(classifier, model_input(torch.from_numpy(held_out.examples)))
    prior = torch.bincount(torch.from_numpy(train.labels), minlength=len(data.class_names)).double()
    if isinstance(data, PointSet):  # the mixture's true modes, not estimates from the samples
        centers, std = modes_of(data)
        ctx = MetricContext(class_prior=prior / prior.sum(), seed=seed, mode_centers=centers, mode_std=std)
    else:
        ctx = MetricContext(class_prior=prior / prior.sum(), seed=seed,
                            heldout_nn_distance=median_nearest_distance(held_ev.pixels, train_ev.pixels))
    return train_ev, held_ev, ctx


def score_checkpoints(manifest: RunManifest, *, classifier: Classifier, data: ImageSet | PointSet,
                      evaluation: EvaluationConfig, reference: ReferenceBatch, seed: int) -> pd.DataFrame:
    """Every metric of `evaluation.metrics` (as `scored_metrics` adapts them to the data) for each checkpoint
    the manifest names, then the real floor."""
    adapt_to_load()  # as many threads as there are CPUs free now
    train_ev, held_ev, ctx = real_context(classifier, data, seed)
    metrics, rows = scored_metrics(evaluation.metrics, isinstance(data, PointSet)), []
    inception = inception_scorer(evaluation, data)
    for entry in manifest.checkpoints:
        crash_point("score_checkpoint")
        generator = load_generator(manifest, entry, evaluation.sampling, *reference.tensors())
        images = scoring_samples(generator, evaluation.num_samples, seed + SCORING_SEED_OFFSET)
        rows.append({"name": entry.name, "step": entry.step,
                     **compute_metrics(metrics, evidence_of(classifier, images), train_ev, ctx), **inception(images),
                     **held_out_likelihood(manifest, entry, data, seed)})
    held_out = model_input(torch.from_numpy(data.subset("held_out").examples))
    rows.append({"name": REAL_FLOOR, "step": None, **compute_metrics(metrics, held_ev, train_ev, ctx),
                 **inception(held_out)})
    frame = pd.DataFrame(rows)
    frame["step"] = frame["step"].astype("Int64")
    return frame


def held_out_likelihood(manifest: RunManifest, entry: CheckpointEntry, data: ImageSet | PointSet,
                        seed: int) -> dict[str, float]:
    """{"bits_per_dim": mean over the held-out split} for a family that scores log-likelihood (exact for the FVBN
    and Real NVP, the ELBO bound for the VAE); nothing for the GAN, which has none."""
    if manifest.model.family == "gan":
        return {}
    family, model = family_of(manifest.model), load_model(manifest, entry)
    rng = torch.Generator().manual_seed(seed + SCORING_SEED_OFFSET)  # the VAE's z and Real NVP's dequantisation
    images = torch.from_numpy(data.subset("held_out").examples)
    return {"bits_per_dim": float(torch.cat([family.bits_per_dim(model, chunk, rng)
                                             for chunk in images.split(LIKELIHOOD_BATCH)]).mean())}


def inception_scorer(evaluation: EvaluationConfig, data: ImageSet | PointSet) -> Callable[[torch.Tensor], dict]:
    """`fd_inception` against the train split when a checked local Inception file is configured, else nothing."""
    if evaluation.inception.weights is None or isinstance(data, PointSet):
        return lambda images: {}
    extractor = load_inception(evaluation.inception.weights, evaluation.inception.sha256)
    real = extractor.features(model_input(torch.from_numpy(data.subset("train").examples)))
    return lambda images: {"fd_inception": inception_fd(extractor, images, real)}


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
