"""Scoring 2-D mixtures: PacGAN's mode metrics on points, the metric rule, the scatter gallery."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_assets.core.config import ConfigError, parse_experiment
from gan_assets.core.data.reference import select_reference
from gan_assets.core.data.sources import load_dataset, mixture_modes
from gan_assets.core.evaluation.classifier import train_classifier
from gan_assets.core.evaluation.metrics import DEFAULT_IMAGE_METRICS, compute_metrics, scored_metrics
from gan_assets.core.evaluation.scoring import evidence_of, real_context, score_checkpoints
from gan_assets.core.gallery.grids import render_gallery
from gan_assets.core.training.run import train_run
from tests.core.training.test_points_training import ring8_inputs

POINT_METRICS = scored_metrics(DEFAULT_IMAGE_METRICS, points=True)


def test_points_drop_pixel_metrics_and_always_get_mode_metrics():
    assert scored_metrics(DEFAULT_IMAGE_METRICS, points=False) == DEFAULT_IMAGE_METRICS
    assert "nn_ratio" not in POINT_METRICS and POINT_METRICS[-1] == "modes"
    assert scored_metrics(["modes", "fd"], points=True) == ("modes", "fd")  # listed once, where listed


@pytest.mark.parametrize("raw, field", [
    ({"evaluation": {"metrics": ["fd", "modes"]}}, "need a 2-D mixture"),  # digits has no known modes
    ({"dataset": {"source": "ring8"}, "evaluation": {"best_metric": "nn_ratio"}}, "measured in pixels"),
])
def test_config_refuses_metrics_the_data_cannot_have(raw, field):
    with pytest.raises(ConfigError, match=field):
        parse_experiment(raw)


@pytest.fixture(scope="module")
def scored_ring8():
    """A mode classifier and the real context of a small ring8 set."""
    config, data, _ = ring8_inputs()
    train = data.subset("train")
    classifier = train_classifier(train.points, train.labels, 8, config.evaluator, seed=0)
    return classifier, real_context(classifier, data, seed=0)


def score(classifier, context, points: torch.Tensor) -> dict[str, float]:
    train_ev, _, ctx = context
    return compute_metrics(POINT_METRICS, evidence_of(classifier, points.float()), train_ev, ctx)


def fresh_ring8(n: int = 1600) -> torch.Tensor:
    config = parse_experiment({"dataset": {"source": "ring8", "num_samples": n}})
    return torch.from_numpy(load_dataset(config.dataset, seed=123).points)


def test_a_perfect_sampler_covers_every_mode(scored_ring8):
    scores = score(*scored_ring8, fresh_ring8())
    assert scores["modes"] == 8 and scores["class_coverage"] == 8
    assert scores["hq_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # 3 std of a 2-D Gaussian
    assert scores["reverse_kl"] < 0.01


def test_a_collapsed_sampler_is_caught(scored_ring8):
    points = fresh_ring8()
    centers, _ = mixture_modes("ring8")
    nearest = torch.cdist(points.double(), centers).argmin(1)
    one_mode, three_modes = points[nearest == 0], points[nearest < 3]
    collapsed, partial = score(*scored_ring8, one_mode), score(*scored_ring8, three_modes)
    assert collapsed["modes"] == 1 and collapsed["reverse_kl"] == pytest.approx(math.log(8), abs=1e-6)
    assert partial["modes"] == 3 and partial["reverse_kl"] == pytest.approx(math.log(8 / 3), abs=0.02)
    off_ring = score(*scored_ring8, points * 0.5)  # every sample between the modes
    assert off_ring["modes"] == 0 and off_ring["hq_fraction"] == 0


def test_the_real_floor_of_points_scores_like_the_mixture(scored_ring8):
    _, (train_ev, held_ev, ctx) = scored_ring8
    assert train_ev.pixels is None and ctx.heldout_nn_distance is None and ctx.mode_std == 0.01
    floor = compute_metrics(POINT_METRICS, held_ev, train_ev, ctx)
    assert floor["modes"] == 8 and floor["reverse_kl"] < 0.05


@pytest.fixture(scope="module")
def ring8_run(tmp_path_factory):
    config, data, inputs = ring8_inputs()
    run_dir = tmp_path_factory.mktemp("ring8-run")
    manifest = train_run(config, inputs, run_dir, log=lambda message: None)
    train = data.subset("train")
    reference = select_reference(train.ids, train.labels, config.reference_batch.size, config.model.z_dim, 0)
    return config, data, run_dir, manifest, reference


def test_score_checkpoints_on_points_has_mode_columns(ring8_run, scored_ring8):
    config, data, run_dir, manifest, reference = ring8_run
    evaluation = config.evaluation.model_copy(update={"num_samples": 200})
    scores = score_checkpoints(manifest, classifier=scored_ring8[0], data=data, evaluation=evaluation,
                               reference=reference, seed=0)
    assert scores["name"].tolist() == ["step_000002", "step_000004", "real_floor"]
    assert {"modes", "hq_fraction", "reverse_kl", "fd", "recall"} <= set(scores.columns)
    assert "nn_ratio" not in scores.columns
    assert scores.set_index("name").loc["real_floor", "modes"] == 8


def test_points_gallery_is_a_scatter_per_checkpoint(ring8_run, tmp_path: Path):
    config, _, run_dir, manifest, reference = ring8_run
    gallery = render_gallery(manifest, reference=reference, grid_size=config.gallery.grid_size, sampling="eval",
                             out_dir=tmp_path)
    assert set(gallery.paths) == {"step_000002", "step_000004"}
    assert all(Path(p).is_file() for p in [*gallery.paths.values(), gallery.progress_path])
    single = gallery.arrays["step_000002"]
    assert single.dtype == np.uint8 and single.ndim == 3 and single.shape[2] == 3
    assert gallery.progress.shape[1] >= 2 * gallery.progress.shape[0]  # a row of two square scatters
    again = render_gallery(manifest, reference=reference, grid_size=config.gallery.grid_size, sampling="eval",
                           out_dir=tmp_path / "again")
    assert again.sha256 == gallery.sha256
