"""The tutorial's GAN costs (section 3.2): values and logit-gradients against closed forms."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from gan_assets.core.models.gan.losses import (
    GENERATOR_LOSSES,
    ML_LOGIT_MAX,
    cost_as_function_of_d,
    discriminator_loss,
    generator_loss,
)

# Saturated on both sides: sigmoid(±30) is 1 - 1e-13 / 1e-13, so probability-space code would fail.
LOGITS = torch.linspace(-30.0, 30.0, 121, dtype=torch.float64)


def _sigmoid(l: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-l))


# Closed forms per sample in plain exp/log, not softplus (float64; |l| <= 30 cannot overflow).
# Minimax ½ log(1 - D) is written as -½ log(1 + e^l): 1 - sigmoid(30) would cancel to 3 digits.
CLOSED_FORM_VALUE = {
    "minimax": lambda l: -0.5 * torch.log(1.0 + torch.exp(l)),
    "non_saturating": lambda l: 0.5 * torch.log(1.0 + torch.exp(-l)),
    "maximum_likelihood": lambda l: -0.5 * torch.exp(l),
}
CLOSED_FORM_GRAD = {
    "minimax": lambda l: -0.5 * _sigmoid(l),
    "non_saturating": lambda l: -0.5 * _sigmoid(-l),
    "maximum_likelihood": lambda l: -0.5 * torch.exp(l),
}


def _per_sample_value_and_grad(name: str, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate the cost on each logit alone (a batch of one) so mean == per-sample value."""
    l = logits.clone().requires_grad_(True)
    per_sample = torch.stack([generator_loss(name, l[i : i + 1]) for i in range(len(l))])
    (grad,) = torch.autograd.grad(per_sample.sum(), l)
    return per_sample.detach(), grad


def test_registry_keys_are_the_three_games():
    assert set(GENERATOR_LOSSES) == {"minimax", "non_saturating", "maximum_likelihood"}


@pytest.mark.parametrize("name", sorted(GENERATOR_LOSSES))
def test_generator_cost_value_and_gradient_match_closed_form(name):
    value, grad = _per_sample_value_and_grad(name, LOGITS)
    # rtol 1e-8, not 1e-15: torch's softplus returns l itself for l > 20, off by log1p(e^-20) ~ 2e-9,
    # harmless in float32 (eps 1.2e-7) but visible in this float64 check.
    assert_close(value, CLOSED_FORM_VALUE[name](LOGITS), rtol=1e-8, atol=1e-12)
    assert_close(grad, CLOSED_FORM_GRAD[name](LOGITS), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", sorted(GENERATOR_LOSSES))
def test_batch_cost_is_mean_of_per_sample_costs(name):
    value, _ = _per_sample_value_and_grad(name, LOGITS)
    assert_close(generator_loss(name, LOGITS), value.mean())


def test_minimax_gradient_vanishes_when_d_rejects_fakes_but_non_saturating_does_not():
    rejected = torch.tensor([-10.0, -20.0, -30.0], dtype=torch.float64)  # D(G(z)) ~ 4.5e-5 .. 9e-14
    _, minimax_grad = _per_sample_value_and_grad("minimax", rejected)
    _, ns_grad = _per_sample_value_and_grad("non_saturating", rejected)
    assert minimax_grad.abs().max() < 3e-5  # -½ sigmoid(l): 2.3e-5 at l=-10, 4.7e-14 at l=-30
    assert minimax_grad[-1].abs() < 1e-13
    assert_close(ns_grad, torch.full_like(ns_grad, -0.5), rtol=0, atol=3e-5)  # -½ sigmoid(-l) -> -½


def test_cost_as_function_of_d_agrees_with_logit_costs():
    d = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    logits = torch.log(d) - torch.log1p(-d)
    for name in GENERATOR_LOSSES:
        value, _ = _per_sample_value_and_grad(name, logits)
        assert_close(cost_as_function_of_d(name, d), value)


@pytest.mark.parametrize("real_target, fake_target", [(1.0, 0.0), (0.9, 0.0), (0.9, 0.2), (0.7, 0.3)])
def test_discriminator_loss_matches_cross_entropy_formula(real_target, fake_target):
    gen = torch.Generator().manual_seed(0)
    real = 4.0 * torch.randn(64, dtype=torch.float64, generator=gen)
    fake = 4.0 * torch.randn(48, dtype=torch.float64, generator=gen) - 1.0
    d_real, d_fake = _sigmoid(real), _sigmoid(fake)
    # -½ E[t_r log D(x) + (1-t_r) log(1-D(x))] - ½ E[t_f log D(G(z)) + (1-t_f) log(1-D(G(z)))]
    expected = -0.5 * (real_target * d_real.log() + (1 - real_target) * (1 - d_real).log()).mean()
    expected -= 0.5 * (fake_target * d_fake.log() + (1 - fake_target) * (1 - d_fake).log()).mean()
    assert_close(discriminator_loss(real, fake, real_target, fake_target), expected)


def test_discriminator_loss_is_half_bce_per_minibatch():
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.0])
    expected = 0.5 * F.binary_cross_entropy_with_logits(real, torch.full_like(real, 0.9))
    expected += 0.5 * F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    assert_close(discriminator_loss(real, fake, real_target=0.9), expected)


def test_perfect_discriminator_loss_is_zero_and_coin_flip_is_log2():
    big = torch.full((4,), 100.0)
    assert discriminator_loss(big, -big).item() == pytest.approx(0.0, abs=1e-30)
    zero = torch.zeros(4)
    assert discriminator_loss(zero, zero).item() == pytest.approx(math.log(2.0))


def test_everything_finite_at_extreme_logits():
    extreme = torch.tensor([-100.0, -50.0, 0.0, 50.0, 100.0], requires_grad=True)  # float32
    costs = [generator_loss(name, extreme) for name in GENERATOR_LOSSES]
    costs.append(discriminator_loss(extreme, extreme, real_target=0.9, fake_target=0.1))
    for cost in costs:
        (grad,) = torch.autograd.grad(cost, extreme)
        assert torch.isfinite(cost) and torch.isfinite(grad).all()


def test_maximum_likelihood_clamps_logit_above_documented_max():
    l = torch.tensor([ML_LOGIT_MAX + 50.0], requires_grad=True)
    cost = generator_loss("maximum_likelihood", l)
    assert cost.item() == pytest.approx(-0.5 * math.exp(ML_LOGIT_MAX), rel=1e-6)
    (grad,) = torch.autograd.grad(cost, l)
    assert grad.item() == 0.0  # the clamp stops the gradient instead of overflowing it


def test_unknown_loss_name_lists_allowed_names():
    with pytest.raises(ValueError, match="maximum_likelihood, minimax, non_saturating"):
        generator_loss("wasserstein", torch.zeros(2))
    with pytest.raises(ValueError, match="unknown generator loss 'hinge'"):
        cost_as_function_of_d("hinge", torch.full((2,), 0.5))
