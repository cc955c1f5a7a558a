"""GAN costs from the NIPS 2016 tutorial (section 3.2), written on D's logits.

Why logits and not probabilities: D(x) = sigmoid(l) rounds to exactly 0 or 1 in float32 once
|l| > ~17 (0 below ~-104), and every cost then hits log(0) or a division by zero. The maximum
likelihood game even needs the logit itself, exp(l) = D / (1 - D). So D outputs the logit l and
every log-probability is a softplus:

    log D(x)     = log sigmoid(l)  = -softplus(-l)
    log(1 - D(x)) = log sigmoid(-l) = -softplus(l)

torch's softplus is stable for any finite l (above its threshold of 20 it returns l itself, off by
at most e^-20 ~ 2e-9, below float32's resolution, and never forms exp of a large positive number),
so these costs and their gradients stay finite at any logit.
The one cost with an exponential, maximum likelihood, clamps the logit at ``ML_LOGIT_MAX`` first.

Signs follow the tutorial: each function returns the cost its player *minimises*, averaged over
the minibatch, with the tutorial's factor ½ kept so values match its formulas and figure.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

# exp(50) ~ 5.2e21: far below float32's max (~3.4e38) even summed over a 1e9-sample batch, and a
# logit of 50 means D(G(z)) = 1 - 2e-22, so nothing real is lost. Below it the gradient is exact;
# above it the gradient is zero (clamp), which only happens when D is absurdly fooled.
ML_LOGIT_MAX = 50.0


def _bce_with_logits(logits: Tensor, target: float) -> Tensor:
    """Per-sample cross-entropy -[t log D + (1-t) log(1-D)] with D = sigmoid(logits)."""
    # -t log sigmoid(l) - (1-t) log sigmoid(-l) = t softplus(-l) + (1-t) softplus(l)
    return target * F.softplus(-logits) + (1.0 - target) * F.softplus(logits)


def discriminator_loss(
    real_logits: Tensor,
    fake_logits: Tensor,
    real_target: float = 1.0,
    fake_target: float = 0.0,
) -> Tensor:
    """J(D) = ½ BCE(real, t_r) + ½ BCE(fake, t_f), each averaged over its own minibatch.

    real_target = 1 - α and fake_target = β are the tutorial's label smoothing (section 4.2): keep
    fake_target at 0, since β > 0 makes D* peak on spurious modes of p_model.
    """
    # -½ E_x[t_r log D(x) + (1-t_r) log(1-D(x))] - ½ E_z[t_f log D(G(z)) + (1-t_f) log(1-D(G(z)))]
    return discriminator_half_loss(real_logits, real_target) + discriminator_half_loss(fake_logits, fake_target)


def discriminator_half_loss(logits: Tensor, target: float) -> Tensor:
    """One half of J(D): ½ BCE(logits, target) over its own minibatch (real and fake halves are summed)."""
    return 0.5 * _bce_with_logits(logits, target).mean()


def generator_loss_minimax(fake_logits: Tensor) -> Tensor:
    """Zero-sum game (3.2.2): J(G) = -J(D), whose G-dependent part is ½ E log(1 - D(G(z)))."""
    # ½ log(1 - sigmoid(l)) = ½ log sigmoid(-l) = -½ softplus(l); d/dl = -½ sigmoid(l) -> 0 as l -> -inf
    return (-0.5 * F.softplus(fake_logits)).mean()


def generator_loss_non_saturating(fake_logits: Tensor) -> Tensor:
    """Heuristic game (3.2.3): flip the target, not the sign: J(G) = -½ E log D(G(z))."""
    # -½ log sigmoid(l) = ½ softplus(-l); d/dl = -½ sigmoid(-l) -> -½ as l -> -inf (never vanishes)
    return (0.5 * F.softplus(-fake_logits)).mean()


def generator_loss_maximum_likelihood(fake_logits: Tensor) -> Tensor:
    """Maximum likelihood game (3.2.4): J(G) = -½ E exp(σ⁻¹(D(G(z)))) = -½ E D/(1-D)."""
    # exp(l) = D / (1 - D); clamped so exp cannot overflow (see ML_LOGIT_MAX)
    return (-0.5 * torch.exp(fake_logits.clamp(max=ML_LOGIT_MAX))).mean()


GENERATOR_LOSSES: dict[str, Callable[[Tensor], Tensor]] = {
    "minimax": generator_loss_minimax,
    "non_saturating": generator_loss_non_saturating,
    "maximum_likelihood": generator_loss_maximum_likelihood,
}


# Beyond the tutorial: the hinge game (Lim & Ye 2017; Miyato et al. 2018, SN-GAN; Brock et al. 2019, BigGAN).
# D minimises E relu(1 - l(x)) + E relu(1 + l(G(z))): a margin, not a likelihood, so D stops pushing a sample
# once it is classified with margin 1; G minimises -E l(G(z)). Not a cost of D(x) alone: no cost-response curve.
def generator_loss_hinge(fake_logits: Tensor) -> Tensor:
    return (-fake_logits).mean()


def discriminator_hinge_half(logits: Tensor, real: bool) -> Tensor:
    """One half of the hinge game's J(D): E relu(1 - l) on reals, E relu(1 + l) on fakes."""
    return F.relu(1.0 - logits).mean() if real else F.relu(1.0 + logits).mean()


GAMES: dict[str, Callable[[Tensor], Tensor]] = {**GENERATOR_LOSSES, "hinge": generator_loss_hinge}


def _check_name(name: str, names=GENERATOR_LOSSES) -> None:
    if name not in names:
        allowed = ", ".join(sorted(names))
        raise ValueError(f"unknown generator loss {name!r}; allowed: {allowed}")


def generator_loss(name: str, fake_logits: Tensor) -> Tensor:
    """The generator cost registered under ``name`` (a key of GAMES: the tutorial's three, or hinge)."""
    _check_name(name, GAMES)
    return GAMES[name](fake_logits)


def cost_as_function_of_d(name: str, d: Tensor) -> Tensor:
    """Per-sample J(G) as a function of D(G(z)) in the open interval (0, 1) (tutorial 3.2.6).

    Written on probabilities on purpose: this is the tutorial's cost-response figure, whose x-axis
    is D. It is for plotting and checking, not training; d = 0 or 1 gives ±inf for some costs.
    """
    _check_name(name)
    if name == "minimax":
        return 0.5 * torch.log1p(-d)  # ½ log(1 - D); log1p keeps precision for small D
    if name == "non_saturating":
        return -0.5 * torch.log(d)  # -½ log D
    return -0.5 * d / (1.0 - d)  # -½ D / (1 - D) = -½ exp(σ⁻¹(D))
