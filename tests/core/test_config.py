"""Bad experiment files fail before any work, with an error naming the field."""

import re
from pathlib import Path

import pytest

from gan_assets.core.config import ConfigError, ExperimentConfig, load_experiment, parse_experiment, section_hash


def test_defaults_are_the_tutorials_values():
    config = ExperimentConfig()
    assert (config.training.lr_g, config.training.lr_d, config.training.beta1) == (2e-4, 2e-4, 0.5)
    assert config.training.generator_loss == "non_saturating"
    assert config.dataset.source == "digits" and config.dataset.download is False


def test_yaml_only_overrides(tmp_path: Path):
    path = tmp_path / "x.yaml"
    path.write_text("training:\n  steps: 7\n")
    config = load_experiment(path)
    assert config.training.steps == 7
    assert config.training.batch_size == ExperimentConfig().training.batch_size


@pytest.mark.parametrize("raw, field", [
    ({"training": {"stepz": 3}}, "training.stepz"),
    ({"bogus_section": {}}, "bogus_section"),
    ({"training": {"lr_g": -1e-4}}, "training.lr_g"),
    ({"training": {"steps": "many"}}, "training.steps"),
    ({"training": {"batch_size": 100_000}}, "training.batch_size"),
    ({"dataset": {"image_size": 48}}, "dataset.image_size"),
    ({"dataset": {"image_size": 128}}, "dataset.image_size"),
    ({"dataset": {"held_out_fraction": 1.5}}, "dataset.held_out_fraction"),
    ({"training": {"device": "tpu"}}, "training.device"),
    ({"reference_batch": {"size": 10_000}}, "reference_batch.size"),
    ({"gallery": {"grid_size": 9}}, "gallery.grid_size"),
    ({"evaluation": {"metrics": ["fd", "inception"]}}, "evaluation.metrics"),
    ({"evaluation": {"best_metric": "kid"}, "seed": 0}, None),  # kid is a default metric: valid
])
def test_bad_values_name_the_field(raw, field):
    if field is None:
        parse_experiment(raw)
        return
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_experiment(raw)


def test_missing_file_and_non_mapping(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_experiment(path)


def test_section_hash_ignores_formatting(tmp_path: Path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("training: {steps: 5, batch_size: 32}\n")
    b.write_text("# comment\ntraining:\n  batch_size: 32\n  steps: 5\n")
    assert section_hash(load_experiment(a).training) == section_hash(load_experiment(b).training)
    assert section_hash(load_experiment(a).training) != section_hash(ExperimentConfig().training)


def test_the_device_is_no_part_of_the_hashed_training_section(tmp_path: Path):
    """The device is a deployment setting (GAN_DEVICE, the torch_device resource): moving to a GPU must not make
    training stale, so it is no field of the section. An old file that still says the default hashes the same."""
    from gan_assets.core.config import TrainingConfig

    assert "device" not in TrainingConfig.model_fields and "device" not in ExperimentConfig().training.model_dump()
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("training:\n  steps: 5\n  device: auto\n")
    new.write_text("training:\n  steps: 5\n")
    assert section_hash(load_experiment(old).training) == section_hash(load_experiment(new).training)


@pytest.mark.parametrize("device", ["cuda", "cpu", "cuda:1"])
def test_a_file_that_still_sets_a_device_says_where_the_setting_went(tmp_path: Path, device):
    path = tmp_path / "gpu.yaml"
    path.write_text(f"training:\n  steps: 5\n  device: {device}\n")
    with pytest.raises(ConfigError) as raised:
        load_experiment(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: training.device: '{device}' is no longer read: the device is a deployment "
                              "setting, not part of the experiment")
    assert f"GAN_DEVICE={device}" in message and "torch_device resource" in message


def test_option_lists_are_the_registries_that_implement_them():
    """Each option's allowed values are the keys of what runs it: a new loss, norm, update rule, sampling
    mode or dataset source is accepted by the config exactly when it is implemented."""
    from typing import get_args

    from gan_assets.core.config import DatasetConfig, EvaluationConfig, ModelConfig, TrainingConfig
    from gan_assets.core.data.sources import LOADERS
    from gan_assets.core.evaluation.sampling import SAMPLING_MODES
    from gan_assets.core.models.gan.losses import GAMES
    from gan_assets.core.models.gan.norms import NORM_KINDS
    from gan_assets.core.training.augment import POLICIES
    from gan_assets.core.training.loop import STEP_FUNCTIONS

    def allowed(model, field):
        return set(get_args(model.model_fields[field].annotation))

    assert allowed(TrainingConfig, "generator_loss") == set(GAMES)
    assert set(get_args(get_args(TrainingConfig.model_fields["augment"].annotation)[0])) == set(POLICIES)
    assert allowed(TrainingConfig, "update") == set(STEP_FUNCTIONS)
    assert allowed(ModelConfig, "norm") == set(NORM_KINDS)
    assert allowed(EvaluationConfig, "sampling") == set(SAMPLING_MODES)
    assert allowed(DatasetConfig, "source") == set(LOADERS)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_numbers_are_refused(tmp_path: Path, value):
    path = tmp_path / "e.yaml"
    path.write_text(f"training:\n  lr_g: {value}\n")
    with pytest.raises(ConfigError, match="training.lr_g: Input should be a finite number"):
        load_experiment(path)


LATE_FAILURES = [  # values that once passed the config and failed after minutes of work → what the error names
    ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    ({"seed": 2**64}, "seed: Input should be less than or equal to 4294967295"),
    ({"training": {"checkpoint_every": True}}, "training.checkpoint_every: Value error, True is a yes/no value"),
    ({"training": {"lr_g": False}}, "training.lr_g: Value error, False is a yes/no value"),
    ({"evaluator": {"batch_size": 1}}, "evaluator.batch_size: Input should be greater than 1"),
    ({"evaluation": {"num_samples": 2}}, "num_samples 2 is too few for precision_recall, whose k=3 nearest"),
    ({"gallery": {"interpolation_steps": 10**6}}, "gallery.interpolation_steps: Input should be less than or equal"),
    ({"gallery": {"neighbours": 10**6}}, "gallery.neighbours: Input should be less than or equal to 32"),
    ({"model": {"z_dim": 2**62}}, "model.z_dim: Input should be less than or equal to 16384"),
    ({"model": {"family": "fvbn", "fvbn": {"layers": 300_000}}}, "model.fvbn.layers: Input should be less than or equal"),
    ({"evaluator": {"feature_dim": 10**20}}, "evaluator.feature_dim: Input should be less than or equal to 16384"),
    ({"training": {"steps": 200_000, "checkpoint_every": 1}}, "writes 200,000 checkpoints, each stored and scored"),
    ({"evaluation": {"inception": {"weights": "w.pt", "sha256": "z" * 64}}}, "must be the 64-hex sha256"),
    ({"dataset": {"root": "a\0b"}}, "dataset.root: Value error, a path cannot contain a NUL byte"),
    ({"dataset": {"root": "\ud800"}}, "not encodable as a file name"),
    ({"evaluation": {"metrics": {"fd", "kid"}}}, "evaluation.metrics: Value error, a set has no order: write a list"),
]


@pytest.mark.parametrize("raw, message", LATE_FAILURES)
def test_values_that_would_fail_late_are_refused_up_front(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_experiment(raw)


def test_limits_leave_ordinary_values_alone():
    config = parse_experiment({"seed": 2**32 - 1, "training": {"steps": 1000, "checkpoint_every": 1},
                               "evaluator": {"batch_size": 2}, "evaluation": {"num_samples": 2, "metrics": ["fd"]},
                               "gallery": {"neighbours": 32}})
    assert (config.seed, config.training.checkpoint_every, config.evaluation.num_samples) == (2**32 - 1, 1, 2)
    assert parse_experiment({"evaluation": {"num_samples": 4}}).evaluation.num_samples == 4


def test_a_file_with_thousands_of_problems_gets_a_readable_message():
    with pytest.raises(ConfigError) as caught:
        parse_experiment({f"k{i}": 1 for i in range(9000)})
    assert "k9: Extra inputs are not permitted (and 8990 more)" in str(caught.value) and len(str(caught.value)) < 800
