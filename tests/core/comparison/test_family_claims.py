"""The tutorial's claims read off a leaderboard: held or not, from the figures in it."""

import pandas as pd

from gan_assets.core.comparison.family_claims import claim_readings


def board(**overrides):
    rows = {"gan": dict(fd=10.0, samples_per_second=50_000.0, sharpness=0.9, bits_per_dim=None),
            "vae": dict(fd=30.0, samples_per_second=40_000.0, sharpness=0.3, bits_per_dim=1.5),
            "fvbn": dict(fd=20.0, samples_per_second=30.0, sharpness=1.1, bits_per_dim=1.2),
            "real_nvp": dict(fd=40.0, samples_per_second=9_000.0, sharpness=1.5, bits_per_dim=1.3)}
    for key, value in overrides.items():
        family, column = key.split("__")
        rows[family][column] = value
    return pd.DataFrame([{"experiment": f"digits-{f}", "status": "scored", "family": f, **r} for f, r in rows.items()])


def reading(readings, start):
    [line] = [r for r in readings if r.startswith(start)]
    return line


def test_claims_that_hold():
    readings = claim_readings(board())
    assert reading(readings, "FVBN").endswith("30 samples/s against 50,000 for the fastest other family (1,667x): held.")
    assert reading(readings, "GAN samples in one").endswith("fastest held.")
    assert reading(readings, "VAE").endswith(": held.") and "bits/dim 1.5 are an ELBO bound" in reading(readings, "VAE")
    assert reading(readings, "GANs give the best").endswith(": held.")
    assert "by construction" in reading(readings, "Real NVP")


def test_claims_that_do_not_hold_say_so():
    readings = claim_readings(board(vae__samples_per_second=90_000.0, vae__sharpness=2.0, fvbn__fd=5.0))
    assert "fastest NOT held" in reading(readings, "GAN samples in one")
    assert reading(readings, "VAE").endswith("NOT held.")
    assert "NOT held (FVBN lowest)" in reading(readings, "GANs give the best")


def test_one_family_alone_compares_nothing():
    only_gan = board().iloc[:1]
    assert claim_readings(only_gan) == []
    unscored = board().assign(status="no scores recorded")
    assert claim_readings(unscored) == []
