"""Optional Inception scores: the FID network only from a local file whose sha256 matches and whose layout is
pytorch-fid's; never downloaded. Random weights: the plumbing is under test (the parity with pytorch-fid and clean-fid
is test_inception_parity.py)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from gan_assets.core.config import ConfigError, EvaluationConfig, parse_experiment
from gan_assets.core.data.images import ImageSet
from gan_assets.core.evaluation.metrics.inception import load_inception
from gan_assets.core.evaluation.scoring import inception_scorer
from gan_assets.core.storage import file_sha256 as sha256_of
from tests.core.evaluation.fid_weights import random_fid_state, write_fid_weights


@pytest.fixture(autouse=True)
def one_thread():
    """2048x2048 eigendecompositions (every FID here) on 2 shared cores: one thread is the faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_fid_weights(tmp_path_factory.mktemp("inception") / "pt_inception-random.pth")


def test_wrong_hash_is_refused_before_loading(tmp_path):
    fake = tmp_path / "weights.pt"
    fake.write_bytes(b"not weights")
    with pytest.raises(ValueError, match="evaluation.inception.sha256.*expected 00"):
        load_inception(fake, "00" * 32)
    with pytest.raises(ConfigError, match="evaluation.inception.weights: no file at .*missing.pt .*never downloaded"):
        load_inception(tmp_path / "missing.pt", "00" * 32)  # a ConfigError: make run names it in one line


def test_torchvisions_imagenet_inception_is_refused(tmp_path):
    """Its keys overlap the FID network's; only its classifier (1000 ImageNet classes, not the 2015 graph's 1008)
    and its auxiliary head tell it apart, so a torchvision file would otherwise load and give non-FID numbers."""
    from torchvision.models import inception_v3

    torchvision_file = tmp_path / "inception_v3_google.pth"
    with torch.device("meta"):  # its keys and shapes; the values do not matter to the check
        layout = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    torch.save({key: torch.zeros(value.shape, dtype=value.dtype) for key, value in layout.items()}, torchvision_file)
    with pytest.raises(ConfigError, match=r"not the FID Inception network .*\(1000, 2048\).*torchvision"):
        load_inception(torchvision_file, sha256_of(torchvision_file))
    extra = random_fid_state() | {"AuxLogits.fc.weight": torch.zeros(1000, 768)}
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ConfigError, match="unexpected \\['AuxLogits.fc.weight'\\]"):
        load_inception(tmp_path / "extra.pth", sha256_of(tmp_path / "extra.pth"))


def test_extractor_label_and_features(weights):
    extractor = load_inception(weights, sha256_of(weights), resize="clean")
    assert extractor.label == (f"FID Inception-v3 (the 2015 TensorFlow graph, pytorch-fid's layout), pool3 2048-d, "
                               f"weights sha256 {sha256_of(weights)}, resize clean")
    images = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(1)) * 2 - 1
    features = extractor.features(images, batch_size=2)
    assert features.shape == (3, 2048) and features.dtype == torch.float64 and torch.isfinite(features).all()
    torch.testing.assert_close(extractor.features(images, batch_size=3), features, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown Inception resize 'bilinear'"):
        load_inception(weights, sha256_of(weights), resize="bilinear")


def tiny_images() -> ImageSet:
    rng = np.random.default_rng(0)
    return ImageSet(rng.integers(0, 256, (10, 1, 12, 12), dtype=np.uint8), np.arange(10) % 2,
                    np.array(["train"] * 6 + ["held_out"] * 4), np.arange(10), "random", ("a", "b"))


def test_scoring_adds_the_inception_columns_only_when_configured(weights, tmp_path):
    data = tiny_images()
    assert inception_scorer(EvaluationConfig(), data)(torch.zeros(2, 1, 12, 12)) == {}
    configured = EvaluationConfig(inception={"weights": str(weights), "sha256": sha256_of(weights)}, num_samples=5,
                                  metrics=["fd", "kid", "precision_recall", "class_kl"], best_metric="kid_inception")
    assert configured.inception_columns == ["fd_inception", "kid_inception", "kid_std_inception",
                                            "precision_inception", "recall_inception"]
    scorer = inception_scorer(configured, data, stats_dir=tmp_path)
    scores = scorer(torch.rand(5, 1, 12, 12, generator=torch.Generator().manual_seed(2)) * 2 - 1)
    floor = scorer.real_floor()
    assert list(scores) == list(floor) == configured.inception_columns
    assert all(np.isfinite(v) for v in [*scores.values(), *floor.values()])
    assert 0 <= scores["precision_inception"] <= 1 and scores["fd_inception"] > 0


def test_inception_config():
    with pytest.raises(ConfigError, match="evaluation.inception"):
        parse_experiment({"evaluation": {"inception": {"weights": "w.pt"}}})
    for column in ("fd_inception", "kid_inception"):
        with pytest.raises(ConfigError, match=column):
            parse_experiment({"evaluation": {"best_metric": column}})  # not computed without weights
    with pytest.raises(ConfigError, match="evaluation.inception.resize"):
        parse_experiment({"evaluation": {"inception": {"weights": "w.pt", "sha256": "0" * 64, "resize": "bilinear"}}})
    without_kid = EvaluationConfig(inception={"weights": "w.pt", "sha256": "A" * 64, "resize": "legacy_pytorch"},
                                   metrics=["fd"])
    assert without_kid.inception_columns == ["fd_inception"]
    assert without_kid.inception.label.endswith(f"weights sha256 {'a' * 64}, resize legacy_pytorch")
    # the option is recorded only with weights: adding it left the records (and scores) of other experiments as they were
    assert "resize" not in EvaluationConfig().model_dump()["inception"]
    assert without_kid.model_dump()["inception"]["resize"] == "legacy_pytorch"
    assert EvaluationConfig().inception.label is None and EvaluationConfig().inception_columns == []
