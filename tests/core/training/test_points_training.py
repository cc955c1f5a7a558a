"""Training on ring8 points: a step moves both players, a run rebuilds the MLP, the evaluator classifies modes."""

from pathlib import Path

import pytest
import torch

from gan_assets.core.config import parse_experiment
from gan_assets.core.data.images import rows_by_id
from gan_assets.core.data.reference import select_reference
from gan_assets.core.data.sources import load_dataset, mixture_modes
from gan_assets.core.evaluation.classifier import accuracy, train_classifier
from gan_assets.core.evaluation.loading import load_generator
from gan_assets.core.models.gan.networks import MLPGenerator
from gan_assets.core.training.loop import STEP_FUNCTIONS, sample_real
from gan_assets.core.training.manifest import ModeCentres
from gan_assets.core.training.run import RunInputs, _device_data, _fresh_state, train_run

RAW = {"dataset": {"source": "ring8", "num_samples": 400}, "reference_batch": {"size": 16},
       "model": {"z_dim": 2, "g_width": 16, "d_width": 16},
       "training": {"steps": 4, "batch_size": 32, "checkpoint_every": 2, "log_every": 2},
       "evaluator": {"epochs": 5, "batch_size": 32}, "gallery": {"grid_size": 2}}


def ring8_inputs(raw=RAW) -> tuple:
    config = parse_experiment(raw)
    data = load_dataset(config.dataset, config.seed)
    train = data.subset("train")
    ref = select_reference(train.ids, train.labels, config.reference_batch.size, config.model.z_dim, config.seed)
    centers, std = mixture_modes("ring8")
    inputs = RunInputs(images=train.points, labels=train.labels, num_classes=8,
                       reference_images=data.points[rows_by_id(data, ref.ids)], reference_labels=ref.labels,
                       reference_z=ref.z, modes=ModeCentres(tuple(map(tuple, centers.tolist())), std))
    return config, data, inputs


def params(module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
@pytest.mark.parametrize("norm", ["batch", "virtual"])
def test_a_step_on_ring8_moves_both_players(update, norm):
    config, _, inputs = ring8_inputs({**RAW, "model": {**RAW["model"], "norm": norm}})
    state, data = _fresh_state(config, inputs, torch.device("cpu")), _device_data(inputs, torch.device("cpu"))
    g0, d0 = params(state.generator), params(state.discriminator)
    stats = STEP_FUNCTIONS[update](state, data, config.training)
    assert torch.isfinite(stats).all()
    assert (params(state.generator) - g0).abs().max() > 0 and (params(state.discriminator) - d0).abs().max() > 0


def test_real_points_reach_d_as_coordinates():
    _, _, inputs = ring8_inputs()
    data = _device_data(inputs, torch.device("cpu"))
    x, y = sample_real(data, 64, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and x.shape == (64, 2)
    torch.testing.assert_close(x.norm(dim=1), torch.ones(64), atol=0.05, rtol=0)  # the unit ring, not rescaled
    assert int(y.max()) < 8


def test_run_manifest_rebuilds_the_mlp_and_names_the_modes(tmp_path: Path):
    config, _, inputs = ring8_inputs()
    manifest = train_run(config, inputs, tmp_path, log=lambda message: None)
    assert manifest.shape == (2,) and len(manifest.modes.centers) == 8
    generator = load_generator(manifest, manifest.latest)
    assert isinstance(generator, MLPGenerator) and generator(torch.randn(3, 2)).shape == (3, 2)


def test_evaluator_classifies_ring8_modes():
    config, data, _ = ring8_inputs()
    train, held_out = data.subset("train"), data.subset("held_out")
    model = train_classifier(train.points, train.labels, 8, config.evaluator, seed=0)
    assert model.init_kwargs["kind"] == "points"
    assert accuracy(model, held_out.points, held_out.labels) >= 0.95
