"""The DCGAN layout rules (tutorial §3.3), checked by introspecting the modules."""

import itertools

import pytest
import torch
from torch import nn

from gan_assets.core.models.gan.networks import Discriminator, Generator, dcgan_init_
from gan_assets.core.models.gan.norms import NORM_KINDS, BatchNorm, NoNorm, ReferenceBatchNorm, VirtualBatchNorm

NORM_TYPES = (BatchNorm, ReferenceBatchNorm, VirtualBatchNorm, NoNorm)
POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample, nn.MaxUnpool2d)


def layers(model: nn.Module) -> list[nn.Module]:
    return [*model.body, *([model.head] if hasattr(model, "head") else [])]


def build(norm: str, size: int, channels: int = 1, depth: int = 0, conditional: bool = False,
          auxiliary: bool = False, classes: int = 3):
    g = Generator(z_dim=8, width=4, channels=channels, image_size=size, norm=norm, depth=depth,
                  num_classes=classes if conditional else 0, label_dim=4)
    d = Discriminator(width=4, channels=channels, image_size=size, norm=norm, depth=depth, num_classes=classes,
                      conditional=conditional, auxiliary_classifier=auxiliary)
    if norm in ("reference", "virtual"):
        labels = torch.arange(5) % classes
        g.set_reference(torch.randn(5, 8), labels)
        d.set_reference(torch.rand(5, channels, size, size) * 2 - 1, labels)
    return g, d


OPTIONS = list(itertools.product(NORM_KINDS, (0, 2), (False, True), (False, True)))  # norm, depth, cond, aux


@pytest.mark.parametrize("norm, depth, conditional, auxiliary", OPTIONS)
@pytest.mark.parametrize("size, channels", [(8, 1), (28, 1), (32, 3)])
def test_layout_rules_hold_for_every_option(norm, depth, conditional, auxiliary, size, channels):
    g, d = build(norm, size, channels, depth, conditional, auxiliary)
    g_layers, d_layers = layers(g), layers(d)
    assert not any(isinstance(m, POOLING) for m in [*g.modules(), *d.modules()])
    # G: transposed convs only; stride 2 except the 1×1→4×4 projection and the extra-depth layers
    g_convs = [m for m in g_layers if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(isinstance(m, nn.ConvTranspose2d) for m in g_convs)
    strides = [m.stride[0] for m in g_convs]
    assert strides.count(2) == {8: 1, 28: 3, 32: 3}[size] and strides.count(1) == 1 + depth
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)
    # D: plain convs only; no norm right after the input conv; ends in a conv (logits, no Sigmoid)
    d_convs = [m for m in d_layers if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(type(m) is nn.Conv2d for m in d_convs)
    assert [m.stride[0] for m in d_convs].count(2) == {8: 1, 28: 3, 32: 3}[size]
    first_conv = d_layers.index(d_convs[0])  # 28×28 input: a background pad to 32 comes first
    assert all(isinstance(m, nn.ConstantPad2d) for m in d_layers[:first_conv])
    assert isinstance(d_layers[first_conv + 1], nn.LeakyReLU) and d_layers[first_conv + 1].negative_slope == 0.2
    assert isinstance(d_layers[-1], nn.Conv2d)
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())
    # every hidden conv except G's output and D's input is followed by the chosen norm
    expected = {"batch": BatchNorm, "reference": ReferenceBatchNorm, "virtual": VirtualBatchNorm, "none": NoNorm}[norm]
    g_norms = [m for m in g_layers if isinstance(m, NORM_TYPES)]
    d_norms = [m for m in d_layers if isinstance(m, NORM_TYPES)]
    assert len(g_norms) == len(g_convs) - 1 and len(d_norms) == len(d_convs) - 2
    assert all(type(m) is expected for m in g_norms + d_norms)
    for sequence in (g_layers, d_layers):  # a norm always sits right after a conv
        for i, m in enumerate(sequence):
            if isinstance(m, NORM_TYPES):
                assert isinstance(sequence[i - 1], (nn.Conv2d, nn.ConvTranspose2d))
    # shapes, with labels where the options need them
    y = torch.tensor([0, 1, 2])
    images = g(torch.randn(3, 8), y if conditional else None)
    assert images.shape == (3, channels, size, size)
    assert images.abs().max() <= 1
    phi = d.features(images)
    assert d.logits(phi, y).shape == (3,)
    if auxiliary:
        assert d.class_logits(phi).shape == (3, 3)


@pytest.mark.parametrize("size", [16, 64])
def test_every_supported_size(size):
    g, d = build("batch", size)
    assert d(g(torch.randn(2, 8))).shape == (2,)


def test_conditional_networks_need_labels():
    g, d = build("batch", 8, conditional=True)
    with pytest.raises(ValueError, match="labels"):
        g(torch.randn(2, 8))
    with pytest.raises(ValueError, match="labels"):
        d(torch.zeros(2, 1, 8, 8))
    z = torch.randn(1, 8).repeat(2, 1)
    g.eval()
    assert (g(z, torch.tensor([0, 1]))[0] - g(z, torch.tensor([0, 1]))[1]).abs().max() > 1e-4  # the class matters


def test_init_follows_dcgan():
    torch.manual_seed(0)
    g, d = build("batch", 64)
    dcgan_init_(g), dcgan_init_(d)
    weights = torch.cat([m.weight.flatten() for m in [*g.modules(), *d.modules()]
                         if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert weights.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    scales = torch.cat([m.weight for m in g.modules() if isinstance(m, BatchNorm)])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.01)


def test_reference_batch_is_never_replaced():
    g, _ = build("virtual", 16)
    with pytest.raises(RuntimeError, match="never replaced"):
        g.set_reference(torch.randn(5, 8))


def test_reference_norm_needs_a_reference():
    g = Generator(8, 4, 1, 16, "reference")
    with pytest.raises(RuntimeError, match="reference batch"):
        g(torch.randn(2, 8))


@pytest.mark.parametrize("norm", ["reference", "virtual"])
def test_generated_example_does_not_depend_on_its_minibatch(norm):
    torch.manual_seed(0)
    g, _ = build(norm, 16)
    z = torch.randn(6, 8)
    alone = g(z[:1])
    torch.testing.assert_close(g(z)[:1], alone)
    torch.testing.assert_close(g(torch.cat([z[3:], z[:1]]))[-1:], alone)


def test_batch_norm_generated_example_depends_on_its_minibatch():
    torch.manual_seed(0)
    g, _ = build("batch", 16)
    z = torch.randn(6, 8)
    assert (g(z)[:2] - g(z[:2])).abs().max() > 1e-2
