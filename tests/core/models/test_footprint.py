"""A model's memory is known from its settings before any weight exists: counted on the meta device, refused by
name when it exceeds the machine."""

import pytest

from gan_assets.core.config import EvaluatorConfig, ModelConfig
from gan_assets.core.evaluation.classifier import check_classifier_fits_memory
from gan_assets.core.models.families import family_of
from gan_assets.core.models.footprint import check_model_fits_memory, parameter_count
from gan_assets.core.models.gan.networks import build_discriminator, build_generator
from gan_assets.core.runtime import memory
from gan_assets.core.runtime.memory import MemoryLimitError


@pytest.mark.parametrize("family, shape", [("gan", (1, 32, 32)), ("gan", (2,)), ("vae", (1, 16, 16)),
                                           ("fvbn", (1, 16, 16)), ("real_nvp", (3, 16, 16))])
def test_the_meta_count_is_the_real_networks_count(family, shape):
    model = ModelConfig(family=family)
    if family == "gan":
        real = [build_generator(model, shape, 10), build_discriminator(model, shape, 10)]
    else:
        real = [family_of(model).build(model, shape)]
    assert parameter_count(model, shape, 10) == sum(p.numel() for net in real for p in net.parameters())


def test_widths_beyond_memory_are_refused_naming_the_section(monkeypatch):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2**30)
    check_model_fits_memory(ModelConfig(), (1, 32, 32), 10)  # 536,384 parameters: 8 MiB
    with pytest.raises(MemoryLimitError, match=r"the model section \(.* parameters: widths, depths, z_dim\) needs "
                                               r"at least .* GiB of memory; this machine has 1.0 GiB"):
        check_model_fits_memory(ModelConfig(g_width=4096), (1, 32, 32), 10)


def test_an_evaluator_feature_dim_beyond_memory_is_refused(monkeypatch):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2**30)
    check_classifier_fits_memory((1, 8, 8), 10, EvaluatorConfig())
    with pytest.raises(MemoryLimitError, match=r"evaluator.feature_dim 10000000 \("):
        # beyond the schema's ceiling too: built unvalidated, to exercise the memory check alone
        check_classifier_fits_memory((1, 8, 8), 10, EvaluatorConfig.model_construct(feature_dim=10**7))
