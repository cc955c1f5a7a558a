"""Evaluation on a GPU, proved on a CPU-only machine: torch's FakeTensorMode makes `cuda` tensors that carry shapes and
devices but no data, and raises on an operation that mixes devices, as CUDA would. Every test first checks that the
mode does catch the mistake it is there to catch (a test that cannot fail proves nothing)."""

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorDeviceMismatchError, FakeTensorMode

from gan_assets.core.evaluation.classifier import Classifier, embed
from gan_assets.core.evaluation.devices import CPU, module_device, placed
from gan_assets.core.evaluation.metrics.inception import inception_input
from gan_assets.core.evaluation.sampling import class_labels, for_sampling, generate
from gan_assets.core.evaluation.scoring import InceptionScorer, sample_evidence, scoring_chunks
from gan_assets.core.models.gan.networks import Generator

CUDA = torch.device("cuda")


def fake_cuda() -> FakeTensorMode:
    """Real CPU modules may be moved into the mode (`.to(CUDA)`), where they become fake CUDA modules."""
    return FakeTensorMode(allow_non_fake_inputs=True)


def conditional_generator() -> Generator:
    return for_sampling(Generator(8, 4, 1, 16, num_classes=3, label_dim=4), "eval")


def test_the_fake_mode_catches_a_cpu_constant_meeting_cuda_images():
    with fake_cuda(), pytest.raises(FakeTensorDeviceMismatchError):
        torch.zeros(2, 3, 4, 4, device=CUDA) - torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)  # a CPU constant


def test_inception_input_is_made_on_the_images_device():
    """legacy_pytorch runs in torch where the images are; clean resizes with PIL on the CPU, so it needs real data
    (tests/core/evaluation/metrics/test_inception_parity.py) and moves its answer back to the images' device."""
    with fake_cuda():
        images = torch.zeros(2, 1, 16, 16, dtype=torch.uint8, device=CUDA)
        assert inception_input(images, "legacy_pytorch").device.type == "cuda"


def test_scoring_draws_and_embeds_on_the_generators_device():
    """Labels are made on G's device, z moves there chunk by chunk, and the evidence stays there for the metrics."""
    generator, classifier = conditional_generator(), Classifier(1, 16, 3, 16).eval()
    with fake_cuda():
        with pytest.raises(FakeTensorDeviceMismatchError):
            generator.to(CUDA)(torch.zeros(5, 8), torch.arange(5) % 3)  # CPU z and labels fed to it unmoved
        classifier.to(CUDA)
        assert class_labels(generator, 5).device.type == "cuda"
        chunks = list(scoring_chunks(generator, 7, seed=0))
        assert [(c.device.type, tuple(c.shape)) for c in chunks] == [("cuda", (7, 1, 16, 16))]
        samples, pool = sample_evidence(classifier, scoring_chunks(generator, 7, seed=0), True, InceptionScorer())
        assert {t.device.type for t in (samples.features, samples.probs, samples.pixels)} == {"cuda"} and pool is None


def test_helpers_answer_on_the_device_their_input_came_from():
    """A CPU caller (the gallery's views, accuracy) gets CPU tensors back from networks that ran on CUDA."""
    generator, classifier = conditional_generator(), Classifier(1, 16, 3, 16).eval()
    with fake_cuda():
        generator.to(CUDA), classifier.to(CUDA)
        images = generate(generator, torch.zeros(5, 8), class_labels(generator, 5))
        features, probs = embed(classifier, images)
        assert images.device == features.device == probs.device == CPU


def test_placed_moves_a_copy_and_leaves_the_callers_module():
    layer = nn.Linear(2, 3)
    assert placed(layer, CPU) is layer
    moved = placed(layer, torch.device("meta"))
    assert moved is not layer and module_device(moved).type == "meta" and module_device(layer) == CPU
    assert module_device(nn.ReLU()) == CPU  # no weights: runs wherever its input is, the CPU by default


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_evaluator_scores_and_gallery_on_cuda_match_the_cpu(tmp_path):
    """The whole evaluation on a real GPU: the CPU's scores (one evaluator for both), a gallery within rounding of
    the CPU's pixels, and an evaluator trained there that is as accurate and comes back on the CPU."""
    import numpy as np

    from gan_assets.core.evaluation.classifier import accuracy, train_classifier
    from gan_assets.core.evaluation.scoring import score_checkpoints
    from gan_assets.core.gallery.grids import render_gallery
    from tests.core.training.test_manifest import make_tiny_run

    config, data, reference, manifest = make_tiny_run(tmp_path / "run")
    train, held_out = data.subset("train"), data.subset("held_out")
    classifier = train_classifier(train.images, train.labels, 10, config.evaluator, config.seed)
    on_cuda = train_classifier(train.images, train.labels, 10, config.evaluator, config.seed, CUDA)
    assert module_device(on_cuda) == CPU
    assert accuracy(on_cuda, held_out.images, held_out.labels, CUDA) == pytest.approx(
        accuracy(classifier, held_out.images, held_out.labels), abs=0.05)
    scores = {device.type: score_checkpoints(manifest, classifier=classifier, data=data, evaluation=config.evaluation,
                                             reference=reference, seed=config.seed, device=device)
              for device in (CPU, CUDA)}
    assert module_device(classifier) == CPU  # the caller's evaluator was not moved
    for column in ("fd", "class_coverage", "class_kl", "precision", "recall"):
        assert scores["cuda"][column].to_numpy(float) == pytest.approx(scores["cpu"][column].to_numpy(float),
                                                                       rel=1e-2, abs=1e-2), column
    galleries = {device.type: render_gallery(manifest, reference=reference, grid_size=4, sampling="eval",
                                             out_dir=tmp_path / device.type, device=device) for device in (CPU, CUDA)}
    for name, grid in galleries["cpu"].arrays.items():
        assert np.abs(grid.astype(int) - galleries["cuda"].arrays[name].astype(int)).max() <= 2, name
