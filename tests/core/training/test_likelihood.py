"""A likelihood family's run on disk: it learns, and a resumed run ends exactly where an uninterrupted one does."""

import torch

from gan_assets.core.config import parse_experiment
from gan_assets.core.data.images import rows_by_id
from gan_assets.core.data.reference import select_reference
from gan_assets.core.data.sources import load_dataset
from gan_assets.core.storage import read_weights
from gan_assets.core.training.likelihood import train_family_run as train_run
from gan_assets.core.training.manifest import RunManifest
from gan_assets.core.training.run import RunInputs

RAW = {"dataset": {"image_size": 8}, "reference_batch": {"size": 16}, "gallery": {"grid_size": 4},
       "model": {"family": "real_nvp", "real_nvp": {"width": 4, "couplings": 1}},
       "training": {"steps": 8, "batch_size": 16, "checkpoint_every": 4, "log_every": 2}}


def inputs(config):
    data = load_dataset(config.dataset)
    train = data.subset("train")
    reference = select_reference(train.ids, train.labels, 16, 4, config.seed)
    return RunInputs(images=train.images, labels=train.labels, num_classes=10,
                     reference_images=data.images[rows_by_id(data, reference.ids)],
                     reference_labels=reference.labels, reference_z=reference.z)


def test_a_resumed_family_run_equals_an_uninterrupted_one(tmp_path):
    config = parse_experiment(RAW)
    run_inputs = inputs(config)
    straight = train_run(config, run_inputs, tmp_path / "straight", log=lambda m: None)
    halfway = parse_experiment({**RAW, "training": {**RAW["training"], "steps": 4}})
    train_run(halfway, run_inputs, tmp_path / "resumed", log=lambda m: None)
    resumed = train_run(config, run_inputs, tmp_path / "resumed", log=lambda m: None)
    assert [e.step for e in resumed.checkpoints] == [e.step for e in straight.checkpoints] == [4, 8]
    for name, tensor in read_weights(straight.run_dir / straight.latest.generator).items():
        torch.testing.assert_close(read_weights(resumed.run_dir / resumed.latest.generator)[name], tensor,
                                   rtol=0, atol=0)
    history = RunManifest.read(straight.run_dir).history_frame()
    assert history["step"].tolist() == [2, 4, 6, 8] and list(history.columns) == ["step", "bits_per_dim"]


def test_a_family_learns_the_data(tmp_path):
    raw = {**RAW, "model": {"family": "vae", "vae": {"latent_dim": 4, "width": 8, "lr": 5e-3}},
           "training": {"steps": 60, "batch_size": 32, "checkpoint_every": 60, "log_every": 10}}
    config = parse_experiment(raw)
    manifest = train_run(config, inputs(config), tmp_path, log=lambda m: None)
    bits = manifest.history_frame()["bits_per_dim"]
    assert bits.is_monotonic_decreasing and bits.iloc[-1] < bits.iloc[0] - 0.3  # the bound falls as it trains
