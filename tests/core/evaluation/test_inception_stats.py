"""The real data's Inception statistics are computed once per (dataset, weights, resize) and read back after: a
second scoring (the next checkpoint, a rematerialization, another experiment on the same data) runs no real image
through the network. A tiny pooling network stands in for Inception: the cache is under test, not the network."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gan_assets.core.config import EvaluationConfig
from gan_assets.core.data.images import ImageSet
from gan_assets.core.evaluation import inception_stats, scoring
from gan_assets.core.evaluation.inception_stats import STATS_FORMAT, real_inception_features, stats_file, stats_folder
from gan_assets.core.evaluation.metrics.distances import gaussian_stats
from gan_assets.core.evaluation.metrics.inception import InceptionExtractor


def counted_extractor(sha256: str = "ab" * 32, resize: str = "clean") -> tuple[InceptionExtractor, list[int]]:
    """A 12-d pooling 'Inception' whose every forward pass records its batch size."""
    model = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten())
    seen: list[int] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(len(args[0])))
    return InceptionExtractor(model, sha256, resize), seen


def images(seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(rng.integers(0, 256, (10, 1, 8, 8), dtype=np.uint8), np.arange(10) % 2,
                    np.array(["train"] * 7 + ["held_out"] * 3), np.arange(10), "random", ("a", "b"))


def test_stored_once_then_read_without_running_the_network(tmp_path):
    extractor, seen = counted_extractor()
    data = images()
    first = real_inception_features(extractor, data, tmp_path)
    assert sum(seen) == 10  # the two splits, once
    path = stats_file(tmp_path, data.content_hash(), extractor)
    assert path.name == f"{data.content_hash()[:16]}-{'ab' * 8}-clean.v{STATS_FORMAT}.npz" and path.is_file()
    written, stamp = path.read_bytes(), path.stat().st_mtime_ns
    second = real_inception_features(extractor, data, tmp_path)
    assert sum(seen) == 10 and path.read_bytes() == written and path.stat().st_mtime_ns == stamp
    for name in ("train", "mu", "sigma", "held_out"):
        assert torch.equal(getattr(second, name), getattr(first, name))
    mu, sigma = gaussian_stats(first.train)
    assert first.train.shape == (7, 12) and first.held_out.shape == (3, 12)
    assert torch.equal(first.mu, mu) and torch.equal(first.sigma, sigma) and first.sigma.dtype == torch.float64
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_other_data_weights_or_resize_get_their_own_file(tmp_path):
    data = images()
    for extractor, data in ((counted_extractor()[0], data), (counted_extractor(sha256="cd" * 32)[0], data),
                            (counted_extractor(resize="legacy_pytorch")[0], data), (counted_extractor()[0], images(1))):
        real_inception_features(extractor, data, tmp_path)
    assert len(list(tmp_path.glob(f"*.v{STATS_FORMAT}.npz"))) == 4


@pytest.mark.parametrize("damage", ["truncated", "other_data"])
def test_a_damaged_or_mislabelled_file_is_computed_again(tmp_path, damage):
    extractor, seen = counted_extractor()
    data = images()
    first = real_inception_features(extractor, data, tmp_path)
    path = stats_file(tmp_path, data.content_hash(), extractor)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:  # a file renamed by hand onto this name: the hashes inside are checked, not the name
        inception_stats.write_real_features(first, path, {"dataset_sha256": "0" * 64, "weights_sha256": "ab" * 32,
                                                          "resize": "clean", "format": str(STATS_FORMAT)})
    again = real_inception_features(extractor, data, tmp_path)
    assert sum(seen) == 20 and torch.equal(again.train, first.train)
    seen.clear()
    real_inception_features(extractor, data, tmp_path)  # replaced by a good file
    assert seen == []


def test_a_second_scoring_reuses_the_stored_statistics(tmp_path, monkeypatch):
    """What score_checkpoints does at each materialization: build the scorer, against the shared folder."""
    extractor, seen = counted_extractor()
    monkeypatch.setattr(scoring, "load_inception", lambda weights, sha256, resize, device: extractor)
    computed = []
    compute = inception_stats.compute_real_features
    monkeypatch.setattr(inception_stats, "compute_real_features", lambda *a: computed.append(1) or compute(*a))
    evaluation = EvaluationConfig(inception={"weights": "w.pth", "sha256": "ab" * 32}, num_samples=5)
    folder = stats_folder(tmp_path / "experiments" / "mnist-dcgan" / "runs" / "0123abcd")
    samples = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    first = scoring.inception_scorer(evaluation, images(), stats_dir=folder)(samples)
    second = scoring.inception_scorer(evaluation, images(), stats_dir=folder)(samples)
    assert computed == [1] and first == second and set(first) == set(evaluation.inception_columns)
    assert sum(seen) == 10 + 5 + 5  # the real splits once, the samples each time


def test_the_folder_is_shared_under_the_storage_root():
    root = Path("/store")
    assert stats_folder(root / "experiments" / "a" / "runs" / "r1") == root / "inception_stats"
    assert stats_folder(root / "experiments" / "b" / "runs" / "r2-fresh-1234") == root / "inception_stats"
    assert stats_folder(Path("/elsewhere/run")) == Path("/elsewhere/run/inception_stats")  # a run outside the store
