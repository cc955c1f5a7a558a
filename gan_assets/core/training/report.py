"""What a finished training run reports: its data version, its facts and the results of its two checks.

One function for both launches: the `gan_checkpoints` asset computes it in its own process, or the trainer entry
point (gan_assets/trainer/pipes_trainer.py) computes it on rank 0 and sends it through Dagster Pipes; the asset turns
either into the same materialization. Plain values only, so it crosses a process boundary as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from gan_assets.core.training.guards import d_domination, weights_are_finite
from gan_assets.core.training.manifest import RunManifest

CHECK_NAMES = ("finite_weights", "d_domination")  # gan_checkpoints' asset checks, in the order they are reported


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    facts: dict[str, Any]


@dataclass(frozen=True)
class RunReport:
    data_version: str  # sha256 of the latest generator file: what the samples downstream are drawn from
    facts: dict[str, Any]  # run_dir, checkpoints, rates, device, final losses
    checks: dict[str, CheckOutcome]  # by name, CHECK_NAMES


def run_report(manifest: RunManifest) -> RunReport:
    history = manifest.history_frame()
    return RunReport(data_version=manifest.latest.generator_sha256, facts=run_facts(manifest, history),
                     checks={"finite_weights": CheckOutcome(*weights_are_finite(manifest)),
                             "d_domination": CheckOutcome(*d_domination(history))})


def run_facts(manifest: RunManifest, history: pd.DataFrame) -> dict[str, Any]:
    last, timing = history.iloc[-1], manifest.timing
    return {
        "run_dir": str(manifest.run_dir),
        "checkpoints": len(manifest.checkpoints),
        "steps_per_second": timing.steps_per_second if timing else float("nan"),
        "images_per_second": timing.images_per_second if timing else float("nan"),
        "device": manifest.device,
        "family": manifest.model.family,
        "train_seconds": round(timing.seconds, 2) if timing else float("nan"),
        # the GAN's loss_d, loss_g, D(x), D(G(z)); a likelihood family's own columns (its loss, bits/dim)
        **{f"final_{name}": float(last[name]) for name in history.columns if name != "step"},
    }
