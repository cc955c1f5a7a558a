"""The tutorial's figures, materialized: PNGs inline and the numbers the figures make."""

import base64

import dagster as dg
import pytest

from gan_assets.assets.tutorial import cost_response_curves, divergence_fits


def png_of(markdown: str) -> bytes:
    return base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")"))


def test_cost_response_curves_asset():
    result = dg.materialize([cost_response_curves])
    [event] = result.asset_materializations_for_node("cost_response_curves")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert png_of(meta["figure"]).startswith(b"\x89PNG")
    d = meta["d_min"]
    # closed forms of dJ(G)/dD at the smallest D(G(z)) drawn: ½·(−1/(1−D)), −½/D, −½/(1−D)²
    assert meta["grad_at_d_min_minimax"] == pytest.approx(-0.5 / (1 - d), rel=1e-5)
    assert meta["grad_at_d_min_non_saturating"] == pytest.approx(-0.5 / d, rel=1e-5)
    assert meta["grad_at_d_min_maximum_likelihood"] == pytest.approx(-0.5 / (1 - d) ** 2, rel=1e-5)


def test_divergence_fits_asset():
    result = dg.materialize([divergence_fits])
    [event] = result.asset_materializations_for_node("divergence_fits")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert png_of(meta["figure"]).startswith(b"\x89PNG")
    assert meta["forward_mu"] == pytest.approx(0.0, abs=0.05)  # averages the modes at ±2…
    assert meta["forward_sigma"] ** 2 == pytest.approx(4.25, rel=0.01)  # …and spans both (2² + 0.5²)
    assert abs(meta["reverse_mu"]) == pytest.approx(2.0, abs=0.1)  # picks one mode
    assert meta["reverse_sigma"] == pytest.approx(0.5, abs=0.1)
