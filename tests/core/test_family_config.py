"""`model.family`: a GAN's config (and so its run key and observed versions) is what it was before families
existed; options of one family set under another are errors naming the field."""

import pytest

from gan_assets.core.config import ConfigError, ExperimentConfig, load_experiment, parse_experiment, section_hash
from gan_assets.core.training.run import run_key

# The model section's hash before `family` existed (default GAN): observed versions of existing experiments.
DEFAULT_MODEL_HASH = "b820d5b571031822bfb1232ed2180fa52faca20fee16eb6822a73e7890d5dc61"


def test_a_gan_config_hashes_as_before_families():
    default, explicit = ExperimentConfig(), parse_experiment({"model": {"family": "gan"}})
    assert section_hash(default.model) == section_hash(explicit.model) == DEFAULT_MODEL_HASH
    assert "family" not in default.model.model_dump() and "vae" not in default.model.model_dump_json()
    assert run_key(default, {}, "2") == run_key(explicit, {}, "2")


def test_a_family_dumps_only_its_own_section():
    config = parse_experiment({"model": {"family": "vae", "vae": {"latent_dim": 8}}})
    dumped = config.model.model_dump()
    assert dumped["family"] == "vae" and dumped["vae"]["latent_dim"] == 8
    assert "fvbn" not in dumped and "real_nvp" not in dumped
    assert section_hash(config.model) != DEFAULT_MODEL_HASH


def test_shipped_family_experiments_load():
    for name in ("digits-vae", "digits-fvbn", "digits-real-nvp"):
        config = load_experiment(f"experiments/{name}.yaml")
        assert config.model.family == name.removeprefix("digits-").replace("-", "_")
        assert config.dataset == load_experiment("experiments/digits-dcgan.yaml").dataset
        assert config.evaluation == load_experiment("experiments/digits-dcgan.yaml").evaluation


@pytest.mark.parametrize("raw, message", [
    ({"model": {"family": "flow"}}, "model.family"),
    ({"model": {"vae": {"width": 8}}}, r"model\.vae is read only when model\.family is 'vae'"),
    ({"model": {"family": "fvbn", "real_nvp": {"width": 8}}}, r"model\.real_nvp is read only"),
    ({"model": {"family": "vae", "norm": "virtual"}}, r"model\.norm applies only to model\.family 'gan'"),
    ({"model": {"family": "vae", "conditional": True}}, r"model\.conditional applies only"),
    ({"model": {"family": "real_nvp"}, "training": {"generator_loss": "minimax"}}, r"training\.generator_loss"),
    ({"model": {"family": "real_nvp"}, "training": {"lr_g": 1e-3}}, r"training\.lr_g .*model\.real_nvp\.lr"),
    ({"model": {"family": "fvbn"}, "training": {"precision": "bf16"}}, r"training\.precision"),
    ({"model": {"family": "fvbn"}, "evaluation": {"sampling": "train"}}, r"evaluation\.sampling"),
    ({"model": {"family": "vae"}, "dataset": {"source": "ring8"}}, r"2-D points"),
    ({"model": {"family": "vae", "vae": {"latent_dim": 0}}}, r"model\.vae\.latent_dim"),
])
def test_options_of_another_family_name_the_field(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_experiment(raw)


def test_a_family_takes_the_shared_training_options():
    config = parse_experiment({"model": {"family": "fvbn", "fvbn": {"layers": 2}},
                               "training": {"steps": 10, "batch_size": 8, "checkpoint_every": 5, "precision": "fp32"}})
    assert (config.training.steps, config.model.fvbn.layers) == (10, 2)
