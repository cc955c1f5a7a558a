"""Guard rails over a training run and its scores: pure functions that the asset checks call.

Each returns (passed, facts): the facts become the check's metadata, so a warning says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from safetensors import safe_open

from gan_assets.core.training.manifest import RunManifest

Facts = dict[str, Any]


def weights_are_finite(manifest: RunManifest) -> tuple[bool, Facts]:
    """Every tensor of every checkpoint the manifest lists is free of NaN and ±inf."""
    bad: list[str] = []
    for entry in manifest.checkpoints:
        for player in ("generator", "discriminator"):
            if getattr(entry, player) is None:  # a likelihood family has no discriminator
                continue
            with safe_open(str(manifest.verified_path(entry, player)), framework="pt") as handle:
                bad += [f"{getattr(entry, player)}:{key}" for key in handle.keys()
                        if handle.get_tensor(key).is_floating_point()
                        and not bool(handle.get_tensor(key).isfinite().all())]
    return not bad, {"non_finite_tensors": len(bad), "first": bad[:5]}


def d_domination(history: pd.DataFrame, loss_floor: float = 0.05, share: float = 0.5) -> tuple[bool, Facts]:
    """D wins outright when its loss sits near 0 for most of the second half while G's loss rises.

    A winning D alone is fine (§4.4); it is a warning when G's cost climbs at the same time, the
    sign that G's gradient is no longer informative.
    """
    if "loss_d" not in history:
        return True, {"not_applicable": "this model family has no discriminator"}
    late = history.iloc[len(history) // 2:]
    if len(late) < 2:
        return True, {"logged_steps": len(late)}
    near_zero = float((late["loss_d"] < loss_floor).mean())
    slope = float(np.polyfit(late["step"].to_numpy(float), late["loss_g"].to_numpy(float), 1)[0])
    dominated = near_zero >= share and slope > 0
    return not dominated, {"share_loss_d_near_zero": near_zero, "loss_g_slope_per_step": slope,
                           "loss_floor": loss_floor}


def mode_collapse(best: pd.Series, floor: pd.Series, coverage_margin: float = 2.0,
                  recall_ratio: float = 0.5) -> tuple[bool, Facts]:
    """Coverage two classes short of the real floor, or recall below half of it: modes are missing."""
    facts: Facts = {}
    collapsed = False
    if "class_coverage" in best:
        facts.update(coverage=float(best["class_coverage"]), floor_coverage=float(floor["class_coverage"]))
        collapsed |= best["class_coverage"] <= floor["class_coverage"] - coverage_margin
    if "recall" in best:
        facts.update(recall=float(best["recall"]), floor_recall=float(floor["recall"]))
        collapsed |= best["recall"] < recall_ratio * floor["recall"]
    return not collapsed, facts


def regression(current: float, previous: float | None, direction: str, tolerance: float = 0.1) -> tuple[bool, Facts]:
    """The best score got worse than the previous materialization's by more than `tolerance` (relative)."""
    if previous is None or not np.isfinite(previous):
        return True, {"current": current, "previous": "none"}
    worse = current - previous if direction == "min" else previous - current
    relative = worse / max(abs(previous), 1e-12)
    return relative <= tolerance, {"current": current, "previous": previous, "relative_change": relative,
                                   "tolerance": tolerance}
