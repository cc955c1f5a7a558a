"""Scoring draws and embeds its samples a chunk at a time: the same numbers as one batch, with one chunk of images
alive at a time, so 10,000 samples cost the memory of SCORING_CHUNK."""

import weakref

import numpy as np
import pytest
import torch
from torch import nn

from gan_assets.core.evaluation import scoring
from gan_assets.core.evaluation.classifier import Classifier
from gan_assets.core.evaluation.metrics.inception import InceptionExtractor
from gan_assets.core.evaluation.sampling import class_labels, for_sampling
from gan_assets.core.evaluation.scoring import InceptionScorer, evidence_of, sample_evidence, scoring_chunks
from gan_assets.core.models.gan.networks import Generator

CHUNK, N, SEED = 50, 234, 5  # a last chunk of 34: the remainder is scored too


@pytest.fixture
def networks(monkeypatch):
    monkeypatch.setattr(scoring, "SCORING_CHUNK", CHUNK)
    torch.manual_seed(0)
    generator = for_sampling(Generator(8, 4, 1, 16, num_classes=3, label_dim=4), "eval")
    return generator, Classifier(1, 16, 3, 16).eval()


def pool_scorer() -> InceptionScorer:
    """Inception's recipe (uint8 quantisation, clean-fid's resize to 299, scaling) ahead of a tiny pooling network."""
    return InceptionScorer(InceptionExtractor(nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten()), "0" * 64))


def test_chunked_evidence_equals_one_batch(networks):
    generator, classifier = networks
    samples, pool = sample_evidence(classifier, scoring_chunks(generator, N, SEED), True, pool_scorer())
    z = torch.randn(N, 8, generator=torch.Generator().manual_seed(SEED))  # the CPU stream scoring draws
    with torch.no_grad():
        images = generator(z, class_labels(generator, N))
    whole = evidence_of(classifier, images)
    for name in ("features", "probs", "pixels"):
        torch.testing.assert_close(getattr(samples, name), getattr(whole, name), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pool, pool_scorer().features(images), rtol=1e-5, atol=1e-6)
    assert samples.probs.argmax(1).tolist() == whole.probs.argmax(1).tolist()


def test_no_network_sees_more_than_a_chunk_and_each_chunk_is_freed_before_the_next(networks):
    generator, classifier = networks
    rows = {"generator": [], "classifier": []}
    alive: list[weakref.ref] = []

    def before_generating(module, args):
        rows["generator"].append(len(args[0]))
        assert all(ref() is None for ref in alive), "the previous chunk of images is still held"

    generator.register_forward_pre_hook(before_generating)
    generator.register_forward_hook(lambda module, args, images: alive.append(weakref.ref(images)))
    classifier.trunk.register_forward_pre_hook(lambda module, args: rows["classifier"].append(len(args[0])))
    samples, _ = sample_evidence(classifier, scoring_chunks(generator, N, SEED), False, InceptionScorer())
    assert rows["generator"] == rows["classifier"] == [CHUNK] * (N // CHUNK) + [N % CHUNK]
    assert samples.n == N and samples.pixels is None  # no pixel metric scored: no pixels kept
    assert len(alive) == len(rows["generator"])


def test_conditional_labels_cycle_across_chunk_boundaries(networks):
    generator, _ = networks
    seen = []
    generator.register_forward_pre_hook(lambda module, args: seen.append(args[1]))
    list(scoring_chunks(generator, N, SEED))
    assert torch.cat(seen).tolist() == (np.arange(N) % 3).tolist()


def test_scoring_chunk_default():
    assert scoring.SCORING_CHUNK == 500  # also sampling.generate's batch: train-mode BN normalises the same chunks
