"""PacGAN's 2-D MLPs keep the tutorial's layout rules (§3.3), checked by introspecting the modules."""

import itertools

import pytest
import torch
from torch import nn

from gan_assets.core.config import parse_experiment
from gan_assets.core.models.gan.networks import (
    MLP_BASE_DEPTH,
    Discriminator,
    Generator,
    MLPDiscriminator,
    MLPGenerator,
    build_discriminator,
    build_generator,
)
from gan_assets.core.models.gan.norms import NORM_KINDS, BatchNorm, NoNorm, ReferenceBatchNorm, VirtualBatchNorm

NORM_TYPES = (BatchNorm, ReferenceBatchNorm, VirtualBatchNorm, NoNorm)
EXPECTED = {"batch": BatchNorm, "reference": ReferenceBatchNorm, "virtual": VirtualBatchNorm, "none": NoNorm}


def build(norm: str, depth: int = 0, conditional: bool = False, auxiliary: bool = False, classes: int = 3):
    g = MLPGenerator(z_dim=4, width=16, norm=norm, depth=depth, num_classes=classes if conditional else 0,
                     label_dim=4)
    d = MLPDiscriminator(width=16, norm=norm, depth=depth, num_classes=classes, conditional=conditional,
                         auxiliary_classifier=auxiliary)
    if norm in ("reference", "virtual"):
        labels = torch.arange(5) % classes
        g.set_reference(torch.randn(5, 4), labels)
        d.set_reference(torch.randn(5, 2), labels)
    return g, d


@pytest.mark.parametrize("norm, depth, conditional, auxiliary",
                         list(itertools.product(NORM_KINDS, (0, 2), (False, True), (False, True))))
def test_mlp_layout_rules_hold_for_every_option(norm, depth, conditional, auxiliary):
    g, d = build(norm, depth, conditional, auxiliary)
    g_linear = [m for m in g.body if isinstance(m, nn.Linear)]
    d_linear = [m for m in d.body if isinstance(m, nn.Linear)]
    assert len(g_linear) == MLP_BASE_DEPTH + depth + 1 and len(d_linear) == MLP_BASE_DEPTH + depth
    # G: ReLU hidden layers, a linear output (no norm, no Tanh: coordinates are unbounded)
    assert isinstance(g.body[-1], nn.Linear) and g.body[-1].out_features == 2
    assert not any(isinstance(m, (nn.Tanh, nn.Sigmoid)) for m in [*g.modules(), *d.modules()])
    assert all(isinstance(m, nn.ReLU) for m in g.body if isinstance(m, (nn.ReLU, nn.LeakyReLU)))
    # D: no norm after the input layer, LeakyReLU(0.2), a linear head giving logits
    assert isinstance(d.body[1], nn.LeakyReLU) and d.body[1].negative_slope == 0.2
    assert isinstance(d.head, nn.Linear) and d.head.out_features == 1
    g_norms = [m for m in g.body if isinstance(m, NORM_TYPES)]
    d_norms = [m for m in d.body if isinstance(m, NORM_TYPES)]
    assert len(g_norms) == len(g_linear) - 1 and len(d_norms) == len(d_linear) - 1
    assert all(type(m) is EXPECTED[norm] for m in g_norms + d_norms)
    for sequence in (g.body, d.body):  # a norm always sits right after a linear layer
        assert all(isinstance(sequence[i - 1], nn.Linear) for i, m in enumerate(sequence) if isinstance(m, NORM_TYPES))
    y = torch.tensor([0, 1, 2])
    points = g(torch.randn(3, 4), y if conditional else None)
    assert points.shape == (3, 2)
    phi = d.features(points)
    assert d.logits(phi, y).shape == (3,)
    if auxiliary:
        assert d.class_logits(phi).shape == (3, 3)


def test_generator_output_is_unbounded():
    g, _ = build("none")
    with torch.no_grad():
        g.body[-1].bias.fill_(4.0)  # grid25's corner mode sits at (4, 4)
    assert g(torch.zeros(2, 4)).min() > 3


@pytest.mark.parametrize("norm", ["reference", "virtual"])
def test_mlp_example_does_not_depend_on_its_minibatch(norm):
    torch.manual_seed(0)
    g, d = build(norm)
    z = torch.randn(6, 4)
    torch.testing.assert_close(g(z)[:1], g(z[:1]))
    x = torch.randn(6, 2)
    torch.testing.assert_close(d(x)[:1], d(x[:1]))


def test_conditional_mlps_need_labels():
    g, d = build("batch", conditional=True)
    with pytest.raises(ValueError, match="labels"):
        g(torch.randn(2, 4))
    with pytest.raises(ValueError, match="labels"):
        d(torch.zeros(2, 2))


def test_the_data_kind_picks_the_network():
    model = parse_experiment({"dataset": {"source": "ring8"}, "model": {"g_width": 24, "d_width": 12}}).model
    assert isinstance(build_generator(model, (2,), 8), MLPGenerator)
    assert isinstance(build_discriminator(model, (2,), 8), MLPDiscriminator)
    assert build_generator(model, (2,), 8).body[0].out_features == 24
    assert isinstance(build_generator(model, (1, 16, 16), 10), Generator)
    assert isinstance(build_discriminator(model, (1, 16, 16), 10), Discriminator)
