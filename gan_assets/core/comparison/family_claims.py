"""The tutorial's §2 claims about each model family, read off the leaderboard: held or not on this data.

Each family is represented by its best experiment (lowest FD) among those scored; a claim is read only when
the families it compares are all there. The readings are one line each, with the figures they rest on.
"""

from __future__ import annotations

import math

import pandas as pd

FAMILY_NAMES = {"gan": "GAN", "vae": "VAE", "fvbn": "FVBN", "real_nvp": "Real NVP"}


def family_rows(table: pd.DataFrame) -> dict[str, pd.Series]:
    """The best-FD scored row of each family in the leaderboard."""
    if "family" not in table or "fd" not in table:
        return {}
    scored = table[(table["status"] == "scored") & table["fd"].notna() & table["family"].notna()]
    return {family: rows.sort_values("fd").iloc[0] for family, rows in scored.groupby("family")}


def _figure(value: float) -> str:
    """1,474 / 33.2 / 0.352: thousands separated, three significant digits below 100."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _held(condition: bool) -> str:
    return "held" if condition else "NOT held"


def _rate(row: pd.Series) -> float:
    value = row.get("samples_per_second")
    return float(value) if value is not None and not pd.isna(value) else math.nan


def claim_readings(table: pd.DataFrame) -> list[str]:
    rows = family_rows(table)
    readings = []
    rates = {family: _rate(row) for family, row in rows.items() if not math.isnan(_rate(row))}
    if "fvbn" in rates and len(rates) > 1:
        fastest_other = max(v for k, v in rates.items() if k != "fvbn")
        readings.append(
            f"FVBN samples one pixel at a time (a network pass per pixel and channel), so it is the slowest to sample: "
            f"{_figure(rates['fvbn'])} samples/s against {_figure(fastest_other)} for the fastest other family "
            f"({_figure(fastest_other / rates['fvbn'])}x): {_held(rates['fvbn'] == min(rates.values()))}.")
    if "gan" in rates and len(rates) > 1:
        others = {FAMILY_NAMES[k]: v for k, v in rates.items() if k != "gan"}
        faster = rates["gan"] >= max(others.values())
        readings.append(
            f"GAN samples in one parallel pass, with no Markov chain: {_figure(rates['gan'])} samples/s against "
            + ", ".join(f"{name} {_figure(value)}" for name, value in others.items())
            + f": fastest {_held(faster)}" + ("" if faster else " (a one-pass decoder or flow is as cheap)") + ".")
    if "real_nvp" in rows:
        readings.append(
            "Real NVP needs a latent code the size of x and invertible layers: held by construction (z has one "
            "dimension per pixel; the inverse is checked in tests/core/models/test_families.py).")
    if "vae" in rows:
        readings.append(_vae_reading(rows))
    if "gan" in rows and len(rows) > 1:
        best = min(rows, key=lambda k: float(rows[k]["fd"]))
        readings.append(
            "GANs give the best samples: lowest FD " + ", ".join(f"{FAMILY_NAMES[k]} {_figure(float(r['fd']))}"
                                                                for k, r in rows.items())
            + f": {_held(best == 'gan')}" + ("" if best == "gan" else f" ({FAMILY_NAMES[best]} lowest)") + ".")
    return readings


def _vae_reading(rows: dict[str, pd.Series]) -> str:
    vae = rows["vae"]
    bound = f"its bits/dim {float(vae['bits_per_dim']):.4g} are an ELBO bound" if "bits_per_dim" in vae and \
        pd.notna(vae["bits_per_dim"]) else "it optimises the ELBO, a bound"
    others = {k: float(r["sharpness"]) for k, r in rows.items()
              if k != "vae" and "sharpness" in r and pd.notna(r["sharpness"])}
    if "sharpness" not in vae or pd.isna(vae["sharpness"]) or not others:
        return f"VAE optimises a lower bound: held by construction ({bound})."
    blurrier = float(vae["sharpness"]) < min(others.values())
    return (f"VAE optimises a lower bound ({bound}) and its samples are blurrier: sharpness (Laplacian variance, "
            f"real = 1) {float(vae['sharpness']):.3g} against " + ", ".join(
                f"{FAMILY_NAMES[k]} {v:.3g}" for k, v in others.items()) + f": {_held(blurrier)}.")
