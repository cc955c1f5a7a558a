"""Scoring checkpoints: generate, embed with the evaluator, measure against the real train split.

One row per checkpoint plus a `real_floor` row (held-out split against the train split), so every
number is read beside what real data scores. Only the checkpoints a manifest names are scored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from gan_assets.core.config import EvaluationConfig
from gan_assets.core.evaluator import Classifier, embed
from gan_assets.core.images import ImageSet
from gan_assets.core.metrics import Evidence, MetricContext, compute_metrics, median_nearest_distance
from gan_assets.core.networks import Generator
from gan_assets.core.reference import ReferenceBatch
from gan_assets.core.sampling import class_labels, for_sampling, generate
from gan_assets.core.trainer import load_generator
from gan_assets.core.training import to_signed_unit

# Scores use their own z stream, apart from training's and the gallery's reference z.
SCORING_SEED_OFFSET = 7919


def evidence_of(classifier: Classifier, images: torch.Tensor) -> Evidence:
    """Float images in [-1, 1] → what the metrics see (features, class probabilities, pixels in [0, 1])."""
    features, probs = embed(classifier, images)
    return Evidence(features.double(), probs.double(), pixels=images.flatten(1).add(1).div(2).double())


def scoring_samples(generator: Generator, num_samples: int, seed: int) -> torch.Tensor:
    """`num_samples` images from a fixed z stream; a conditional G cycles through the classes."""
    z = torch.randn(num_samples, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    return generate(generator, z, class_labels(generator, num_samples))


def real_context(classifier: Classifier, data: ImageSet, seed: int) -> tuple[Evidence, Evidence, MetricContext]:
    """Evidence of the train and held-out splits, and the context every metric shares."""
    train, held_out = data.subset("train"), data.subset("held_out")
    train_ev = evidence_of(classifier, to_signed_unit(torch.from_numpy(train.images)))
    held_ev = evidence_of(classifier, to_signed_unit(torch.from_numpy(held_out.images)))
    prior = torch.bincount(torch.from_numpy(train.labels), minlength=len(data.class_names)).double()
    ctx = MetricContext(class_prior=prior / prior.sum(), seed=seed,
                        heldout_nn_distance=median_nearest_distance(held_ev.pixels, train_ev.pixels))
    return train_ev, held_ev, ctx


def score_checkpoints(run_dir: Path, manifest: dict[str, Any], classifier: Classifier, data: ImageSet,
                      evaluation: EvaluationConfig, reference: ReferenceBatch, seed: int) -> pd.DataFrame:
    """Every metric of `evaluation.metrics` for each checkpoint the manifest names, then the real floor."""
    train_ev, held_ev, ctx = real_context(classifier, data, seed)
    metrics, rows = evaluation.metrics, []
    for entry in manifest["checkpoints"]:
        generator = for_sampling(load_generator(run_dir, manifest, entry), evaluation.sampling, *reference.tensors())
        samples = evidence_of(classifier, scoring_samples(generator, evaluation.num_samples,
                                                          seed + SCORING_SEED_OFFSET))
        rows.append({"name": f"step_{entry['step']:06d}", "step": entry["step"],
                     **compute_metrics(metrics, samples, train_ev, ctx)})
    rows.append({"name": "real_floor", "step": None, **compute_metrics(metrics, held_ev, train_ev, ctx)})
    frame = pd.DataFrame(rows)
    frame["step"] = frame["step"].astype("Int64")
    return frame


def best_row(scores: pd.DataFrame, metric: str, direction: str) -> pd.Series:
    """The best checkpoint row (the real floor never competes)."""
    candidates = scores[scores["name"] != "real_floor"]
    values = candidates[metric].to_numpy(dtype=np.float64)
    pick = np.nanargmin(values) if direction == "min" else np.nanargmax(values)
    return candidates.iloc[int(pick)]


def frame_hash(frame: pd.DataFrame) -> str:
    """sha256 of a table's values: the data version of score tables."""
    return hashlib.sha256(frame.to_json(orient="split", double_precision=15).encode()).hexdigest()
