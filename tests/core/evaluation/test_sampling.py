"""Sampling modes of a batch-norm generator: running, per-batch and reference statistics."""

import pytest
import torch

from gan_assets.core.evaluation.sampling import class_labels, for_sampling, generate
from gan_assets.core.models.gan.networks import Generator, dcgan_init_
from gan_assets.core.models.gan.norms import BatchNorm


@pytest.fixture
def generator() -> Generator:
    torch.manual_seed(0)
    g = Generator(z_dim=8, width=4, channels=1, image_size=16)
    dcgan_init_(g)
    g.train()(torch.randn(32, 8))  # some running statistics
    return g


def test_reference_mode_uses_the_reference_batch_statistics(generator):
    reference = torch.randn(16, 8)
    g = for_sampling(generator, "reference", reference)
    first = next(m for m in g.modules() if isinstance(m, BatchNorm))
    features = g.body[0](reference[:, :, None, None])  # the input of the first norm
    torch.testing.assert_close(first.running_mean, features.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(first.running_var, features.var(dim=(0, 2, 3), unbiased=False))
    # and in that mode, like eval mode, an example does not depend on its batch
    z = torch.randn(6, 8)
    torch.testing.assert_close(g(z)[:1], g(z[:1]))


def test_train_mode_depends_on_the_batch_and_eval_does_not(generator):
    z = torch.randn(6, 8)
    trained = for_sampling(generator, "train")
    assert (trained(z)[:2] - trained(z[:2])).abs().max() > 1e-3
    evaluated = for_sampling(generator, "eval")
    torch.testing.assert_close(evaluated(z)[:2], evaluated(z[:2]))


def test_sampling_copy_leaves_the_checkpoint_untouched(generator):
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    for_sampling(generator, "reference", torch.randn(16, 8))
    for_sampling(generator, "train")(torch.randn(4, 8))
    for key, value in generator.state_dict().items():
        torch.testing.assert_close(value, before[key])


def test_unknown_mode_and_missing_reference():
    g = Generator(8, 4, 1, 16)
    with pytest.raises(ValueError, match="sampling mode"):
        for_sampling(g, "average")
    with pytest.raises(ValueError, match="reference z"):
        for_sampling(g, "reference")


def test_conditional_labels_cycle_or_follow_rows():
    g = Generator(8, 4, 1, 16, num_classes=3, label_dim=2)
    assert class_labels(g, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert class_labels(g, 6, per_row=2).tolist() == [0, 0, 1, 1, 2, 2]
    assert class_labels(Generator(8, 4, 1, 16), 5) is None
    assert generate(for_sampling(g, "eval"), torch.randn(5, 8), class_labels(g, 5), batch_size=2).shape == (5, 1, 16, 16)
