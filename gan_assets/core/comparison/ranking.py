"""Every experiment's best checkpoint side by side, with the config that tells them apart."""

from __future__ import annotations

from typing import Any

import pandas as pd

from gan_assets.core.evaluation.scoring import REAL_FLOOR, best_row, real_floor_row
from gan_assets.core.evaluation.verdict import verdict_of


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"training": {"steps": 5}} → {"training.steps": 5}; lists become strings so they compare."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = ",".join(map(str, value)) if isinstance(value, list) else value
    return flat


def config_differences(configs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per experiment, one column per config field whose value is not the same everywhere."""
    frame = pd.DataFrame({name: flatten(config) for name, config in configs.items()}).T
    varying = [c for c in frame.columns if frame[c].astype(str).nunique() > 1]
    return frame[varying]


def build_leaderboard(scores: dict[str, pd.DataFrame], configs: dict[str, dict[str, Any]],
                      missing: dict[str, str] | None = None,
                      figures: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """Best row of each experiment (by its own best metric), its verdict's grade and FD ratio, its real floor, and
    what differs in config;
    experiments in `missing` get a row with their status (why there is nothing to compare) and no scores.
    `figures` adds per-experiment facts recorded beside the scores (model family, sampling speed, training time)."""
    rows = [{"experiment": name, "status": status} for name, status in (missing or {}).items()]
    for name in sorted(scores):
        evaluation = configs[name]["evaluation"]
        best = best_row(scores[name], evaluation["best_metric"], evaluation["best_direction"])
        floor = real_floor_row(scores[name])
        metrics = {c: best[c] for c in best.index if c not in ("name", "step")}
        verdict = verdict_of(scores[name], best["name"]).as_dict()  # the grade its asset pages show
        rows.append({"experiment": name, "status": "scored", "best_checkpoint": best["name"], "step": int(best["step"]),
                     "grade": verdict["grade"], "fd_ratio": verdict["fd_ratio"],
                     "ranked_by": evaluation["best_metric"], **metrics,
                     **{f"{REAL_FLOOR}_{c}": floor[c] for c in metrics},
                     "family": configs[name].get("model", {}).get("family", "gan"), **(figures or {}).get(name, {})})
    table = pd.DataFrame(rows, columns=None if rows else ["experiment", "status"]).set_index("experiment")
    if configs:
        table = table.join(config_differences(configs).add_prefix("config."))
    return table.sort_index().reset_index()
