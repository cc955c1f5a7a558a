"""The cost-response and divergence-direction figures (tutorial 3.2.5, 3.2.6): data, then PNGs."""

import math

import pytest
import torch
from torch.testing import assert_close

from gan_assets.core.models.gan.losses import GENERATOR_LOSSES
from gan_assets.core.models.gan.tutorial_figures import (
    GaussianMixture1D,
    cost_response_curves,
    fit_gaussian_to_mixture,
    render_cost_response_png,
    render_divergence_fits_png,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# dJ(G)/dD for each cost, differentiated by hand from the tutorial's formulas.
CLOSED_FORM_DERIVATIVE = {
    "minimax": lambda d: -0.5 / (1.0 - d),  # d/dD ½ log(1 - D)
    "non_saturating": lambda d: -0.5 / d,  # d/dD -½ log D
    "maximum_likelihood": lambda d: -0.5 / (1.0 - d) ** 2,  # d/dD -½ D/(1 - D)
}
CLOSED_FORM_COST = {
    "minimax": lambda d: 0.5 * torch.log(1.0 - d),
    "non_saturating": lambda d: -0.5 * torch.log(d),
    "maximum_likelihood": lambda d: -0.5 * d / (1.0 - d),
}


@pytest.fixture(scope="module")
def curves():
    return cost_response_curves(num_points=99)


@pytest.fixture(scope="module")
def fits():
    return {direction: fit_gaussian_to_mixture(direction) for direction in ("forward", "reverse")}


def test_curves_have_d_and_a_cost_and_derivative_per_game(curves):
    expected = ["d"] + [f"{n}_{kind}" for n in GENERATOR_LOSSES for kind in ("cost", "grad")]
    assert list(curves.columns) == expected
    assert len(curves) == 99
    assert curves["d"].min() > 0.0 and curves["d"].max() < 1.0  # open interval: costs are finite


@pytest.mark.parametrize("name", sorted(GENERATOR_LOSSES))
def test_curve_columns_equal_closed_forms(curves, name):
    d = torch.tensor(curves["d"].to_numpy())
    assert_close(torch.tensor(curves[f"{name}_cost"].to_numpy()), CLOSED_FORM_COST[name](d))
    assert_close(torch.tensor(curves[f"{name}_grad"].to_numpy()), CLOSED_FORM_DERIVATIVE[name](d))


def test_curves_show_minimax_saturating_where_non_saturating_is_steep(curves):
    first = curves.iloc[0]  # D(G(z)) = 0.01: D confidently rejects the fakes
    assert abs(first["minimax_grad"]) < 0.51
    assert abs(first["non_saturating_grad"]) > 49.0


def test_forward_kl_averages_the_modes(fits):
    fit = fits["forward"]
    assert fit["mu"] == pytest.approx(0.0, abs=0.05)
    # The KL(p‖q)-optimal Gaussian matches p's moments: var = within-mode 0.5² + between-mode 2².
    assert fit["sigma"] ** 2 == pytest.approx(4.0 + 0.25, rel=0.01)


def test_reverse_kl_picks_one_mode(fits):
    fit = fits["reverse"]
    assert abs(fit["mu"]) == pytest.approx(2.0, abs=0.1)
    assert fit["sigma"] == pytest.approx(0.5, abs=0.1)
    # q sits on one mode, where p is half of that mode's Gaussian: KL(q‖p) -> log 2.
    assert fit["kl"] == pytest.approx(math.log(2.0), abs=1e-3)


def test_unknown_direction_is_an_error():
    with pytest.raises(ValueError, match="forward, reverse"):
        fit_gaussian_to_mixture("sideways")


def test_pngs_are_png(curves, fits):
    assert render_cost_response_png(curves).startswith(PNG_SIGNATURE)
    assert render_divergence_fits_png(GaussianMixture1D(), fits).startswith(PNG_SIGNATURE)
