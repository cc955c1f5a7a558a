"""The tutorial's figures as assets (group `tutorial`): they depend on no experiment."""

import dagster as dg

from gan_assets.core.models.gan.tutorial_figures import (
    GaussianMixture1D,
    fit_gaussian_to_mixture,
    render_cost_response_png,
    render_divergence_fits_png,
)
from gan_assets.core.models.gan.tutorial_figures import (
    cost_response_curves as compute_cost_response_curves,
)
from gan_assets.core.png import markdown_png


@dg.asset(code_version="1", group_name="tutorial", kinds={"png"})
def cost_response_curves() -> dg.MaterializeResult:
    """§3.2.6: each generator cost J(G) and its derivative as a function of D(G(z)) on (0, 1)."""
    curves = compute_cost_response_curves()
    png = render_cost_response_png(curves)
    # where D rejects G's samples (D(G(z)) → 0), minimax's gradient vanishes; the others' do not
    near_zero = curves.iloc[0]
    return dg.MaterializeResult(metadata={
        "figure": dg.MetadataValue.md(markdown_png(png, "cost response curves")),
        "d_min": float(near_zero["d"]),
        **{f"grad_at_d_min_{name}": float(near_zero[f"{name}_grad"])
           for name in ("minimax", "non_saturating", "maximum_likelihood")},
        "dagster/row_count": len(curves),
    })


@dg.asset(code_version="1", group_name="tutorial", kinds={"png"})
def divergence_fits() -> dg.MaterializeResult:
    """§3.2.5: a Gaussian fitted to two modes by KL(p‖q) averages them; by KL(q‖p) it picks one."""
    mixture = GaussianMixture1D()
    fits = {direction: fit_gaussian_to_mixture(direction, mixture) for direction in ("forward", "reverse")}
    png = render_divergence_fits_png(mixture, fits)
    return dg.MaterializeResult(metadata={
        "figure": dg.MetadataValue.md(markdown_png(png, "divergence fits")),
        **{f"{direction}_{key}": float(value) for direction, fit in fits.items() for key, value in fit.items()},
    })
