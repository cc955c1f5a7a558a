"""The DCGAN layout rules (tutorial §3.3), checked by introspecting the modules."""

import itertools

import pytest
import torch
from torch import nn

from gan_assets.core.networks import Discriminator, Generator, dcgan_init_
from gan_assets.core.norms import NORM_KINDS, BatchNorm, NoNorm, ReferenceBatchNorm, VirtualBatchNorm

NORM_TYPES = (BatchNorm, ReferenceBatchNorm, VirtualBatchNorm, NoNorm)
POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample, nn.MaxUnpool2d)


def layers(model: nn.Module) -> list[nn.Module]:
    return list(model.body)


def build(norm: str, size: int, channels: int = 1):
    g = Generator(z_dim=8, width=4, channels=channels, image_size=size, norm=norm)
    d = Discriminator(width=4, channels=channels, image_size=size, norm=norm)
    if norm in ("reference", "virtual"):
        g.set_reference(torch.randn(5, 8))
        d.set_reference(torch.rand(5, channels, size, size) * 2 - 1)
    return g, d


@pytest.mark.parametrize("norm, size, channels", list(itertools.product(NORM_KINDS, (8, 16, 32, 64), (1, 3))))
def test_layout_rules_hold_for_every_option(norm, size, channels):
    g, d = build(norm, size, channels)
    g_layers, d_layers = layers(g), layers(d)
    assert not any(isinstance(m, POOLING) for m in [*g.modules(), *d.modules()])
    # G: transposed convs only, stride 2 after the first; Tanh output with no norm before it
    g_convs = [m for m in g_layers if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(isinstance(m, nn.ConvTranspose2d) for m in g_convs)
    assert [m.stride for m in g_convs[1:]] == [(2, 2)] * (len(g_convs) - 1)
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)
    # D: strided convs only; no norm right after the input conv; ends in a conv (logits, no Sigmoid)
    d_convs = [m for m in d_layers if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(type(m) is nn.Conv2d for m in d_convs)
    assert [m.stride for m in d_convs[:-1]] == [(2, 2)] * (len(d_convs) - 1)
    assert isinstance(d_layers[1], nn.LeakyReLU) and d_layers[1].negative_slope == 0.2
    assert isinstance(d_layers[-1], nn.Conv2d)
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())
    # every hidden conv except G's output and D's input is followed by the chosen norm
    expected = {"batch": BatchNorm, "reference": ReferenceBatchNorm, "virtual": VirtualBatchNorm, "none": NoNorm}[norm]
    g_norms = [m for m in g_layers if isinstance(m, NORM_TYPES)]
    d_norms = [m for m in d_layers if isinstance(m, NORM_TYPES)]
    assert len(g_norms) == len(g_convs) - 1 and len(d_norms) == len(d_convs) - 2
    assert all(type(m) is expected for m in g_norms + d_norms)
    # shapes
    images = g(torch.randn(3, 8))
    assert images.shape == (3, channels, size, size)
    assert images.abs().max() <= 1
    assert d(images).shape == (3,)


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
