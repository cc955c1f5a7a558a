"""Optional Inception FID: only from a local file whose sha256 matches; never downloaded."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import inception_v3

from gan_assets.core.config import ConfigError
from gan_assets.core.evaluation.metrics.inception import inception_fd, load_inception
from gan_assets.core.storage import file_sha256 as sha256_of


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A randomly initialised inception_v3 state dict: the architecture is what is under test."""
    torch.manual_seed(0)
    model = inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path_factory.mktemp("inception") / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_wrong_hash_is_refused_before_loading(tmp_path):
    fake = tmp_path / "weights.pt"
    fake.write_bytes(b"not weights")
    with pytest.raises(ValueError, match="evaluation.inception.sha256.*expected 00"):
        load_inception(fake, "00" * 32)
    with pytest.raises(ConfigError, match="evaluation.inception.weights: no file at .*missing.pt .*never downloaded"):
        load_inception(tmp_path / "missing.pt", "00" * 32)  # a ConfigError: make run names it in one line


def test_extractor_features_and_fd(weights):
    extractor = load_inception(weights, sha256_of(weights))
    assert sha256_of(weights) in extractor.label
    torch.manual_seed(1)
    images = torch.rand(6, 1, 32, 32) * 2 - 1
    features = extractor.features(images, batch_size=3)
    assert features.shape == (6, 2048) and torch.isfinite(features).all()
    assert inception_fd(extractor, images, features) == pytest.approx(0.0, abs=1e-6)  # a set against itself
    assert inception_fd(extractor, -images, features) > 0


def test_scoring_adds_fd_inception_only_when_configured(weights):
    import numpy as np

    from gan_assets.core.config import ConfigError, EvaluationConfig, parse_experiment
    from gan_assets.core.data.images import ImageSet
    from gan_assets.core.evaluation.scoring import inception_scorer

    rng = np.random.default_rng(0)
    data = ImageSet(rng.integers(0, 256, (12, 1, 16, 16), dtype=np.uint8), np.arange(12) % 2,
                    np.array(["train"] * 8 + ["held_out"] * 4), np.arange(12), "random", ("a", "b"))
    assert inception_scorer(EvaluationConfig(), data)(torch.zeros(2, 1, 16, 16)) == {}
    configured = EvaluationConfig(inception={"weights": str(weights), "sha256": sha256_of(weights)},
                                  best_metric="fd_inception")
    scores = inception_scorer(configured, data)(torch.rand(5, 1, 16, 16) * 2 - 1)
    assert set(scores) == {"fd_inception"} and np.isfinite(scores["fd_inception"])
    with pytest.raises(ConfigError, match="evaluation.inception"):
        parse_experiment({"evaluation": {"inception": {"weights": "w.pt"}}})
    with pytest.raises(ConfigError, match="fd_inception"):
        parse_experiment({"evaluation": {"best_metric": "fd_inception"}})
