"""Is the model good? One verdict per checkpoint, read off the score table against its real floor.

Every score is compared with the `real_floor` row of the same table: as a **ratio** where dividing by the floor
means something (FD, precision, recall, ...), as a **distance** (value − floor) where the floor is about 0 or can be
negative (KID, the KL columns) or is a count (classes, modes). The grade is the worst of what the graded criteria
say, each stated as a constant here and in docs/metrics.md ("Is it good? The verdict"); every criterion gives a
plain-words reason. The asset pages, the HTML gallery and `make run`'s JSON line all show `Verdict.as_dict()`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from gan_assets.core.evaluation.scoring import REAL_FLOOR

GOOD, FAIR, POOR = "good", "fair", "poor"
UNGRADED = "no verdict"  # nothing the table has can be graded against a floor
GRADES = (GOOD, FAIR, POOR)  # best first: the verdict is the worst grade any criterion gives

# FD over its real floor: the docs' yardstick "FD ≤ 3× the real floor" is good; up to 10× is fair.
FD_RATIO_GOOD = 3.0
FD_RATIO_FAIR = 10.0
# precision, recall and hq_fraction over their floors (higher is better): ≥ 0.8 good, ≥ 0.5 fair (below half is
# the `mode_collapse` check's recall warning).
SHARE_GOOD = 0.8
SHARE_FAIR = 0.5
# classes (or a mixture's modes) covered over the floor's: all good, ≥ 90% fair (9 of 10 classes; 8 of 10 is the
# `mode_collapse` check's warning).
COVERAGE_FAIR = 0.9
# nn_ratio (samples' nearest training image over held-out data's, 1 on the floor): below 0.5 copies training images.
NN_RATIO_GOOD = 0.8
NN_RATIO_FAIR = 0.5
# reverse_kl (a mixture's mode histogram against uniform; its floor is about 0): the distance to the floor.
REVERSE_KL_GOOD = 0.1
REVERSE_KL_FAIR = 0.5

DISTANCE_METRICS = ("kid", "kid_std", "class_kl", "reverse_kl")  # floors about 0, KID's can be negative
COUNT_METRICS = ("class_coverage", "modes")  # whole classes or modes: a count short of the floor's
FRACTION_METRICS = ("precision", "recall", "hq_fraction", "confidence")  # in [0, 1]: 3 decimals
DISPLAY_COLUMNS = ("grade", "fd_ratio")  # added for display only, never stored in the parquet
NEAR_ZERO = 1e-9  # a floor this small makes a ratio meaningless


@dataclass(frozen=True)
class Comparison:
    """One score beside its real floor: `ratio` (value / floor) or `distance` (value − floor), never both."""

    metric: str
    value: float
    floor: float | None  # None: real data has none (bits/dim)
    ratio: float | None = None
    distance: float | None = None

    def as_dict(self) -> dict:
        """Rounded as the pages show it: the JSON line and the UI carry the same numbers."""
        entry = {"value": display_number(self.metric, self.value), "floor": display_number(self.metric, self.floor)}
        if self.ratio is not None:
            entry["ratio"] = round(self.ratio, 2)
        if self.distance is not None:
            entry["distance"] = display_number(self.metric, self.distance)
        return entry


@dataclass(frozen=True)
class Verdict:
    """A checkpoint's grade, its FD ratio, every score beside its floor, and why, in plain words."""

    checkpoint: str
    step: int | None
    grade: str
    fd_ratio: float | None
    comparisons: tuple[Comparison, ...]
    reasons: tuple[str, ...]

    def as_dict(self) -> dict:
        """The JSON form (`verdict_json` metadata, the `verdict` of `make run`'s JSON line)."""
        return {"checkpoint": self.checkpoint, "step": self.step, "grade": self.grade,
                "fd_ratio": None if self.fd_ratio is None else round(self.fd_ratio, 2),
                "reasons": list(self.reasons), "comparisons": {c.metric: c.as_dict() for c in self.comparisons}}


def base_metric(column: str) -> str:
    """`fd_inception` → `fd`: an Inception column compares like the evaluator's."""
    return column.removesuffix("_inception")


def finite(value) -> float | None:
    """A plain float, or None for a missing or non-finite value (NaN, pd.NA, None)."""
    if value is None or value is pd.NA:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def compare(metric: str, value, floor) -> Comparison | None:
    """`metric` beside its floor; None where the checkpoint has no value for it."""
    value, floor = finite(value), finite(floor)
    if value is None:
        return None
    if floor is None:
        return Comparison(metric, value, None)
    if base_metric(metric) in DISTANCE_METRICS + COUNT_METRICS or abs(floor) < NEAR_ZERO:
        return Comparison(metric, value, floor, distance=value - floor)
    return Comparison(metric, value, floor, ratio=value / floor)


def metric_columns(scores: pd.DataFrame) -> list[str]:
    return [c for c in scores.columns if c not in ("name", "step", *DISPLAY_COLUMNS)]


def floor_of(scores: pd.DataFrame) -> pd.Series | None:
    floors = scores[scores["name"] == REAL_FLOOR]
    return None if floors.empty else floors.iloc[0]


def verdict_of(scores: pd.DataFrame, checkpoint: str) -> Verdict:
    """The verdict of the row named `checkpoint`, graded on the evaluator's columns (Inception's are compared too)."""
    row = scores[scores["name"] == checkpoint].iloc[0]
    floor = floor_of(scores)
    comparisons = tuple(c for c in (compare(m, row[m], None if floor is None else floor[m])
                                    for m in metric_columns(scores)) if c is not None)
    by_metric = {c.metric: c for c in comparisons}
    graded = [g for g in (grade_of(by_metric.get(m)) for m in GRADED) if g is not None]
    grade = max((g for g, _ in graded), key=GRADES.index) if graded else UNGRADED
    fd = by_metric.get("fd")
    step = None if pd.isna(row["step"]) else int(row["step"])
    return Verdict(checkpoint, step, grade, None if fd is None else fd.ratio,
                   comparisons, tuple(r for _, r in graded) + notes(by_metric))


def band(value: float, good: float, fair: float, higher_is_better: bool) -> str:
    """GOOD within `good`, FAIR within `fair`, else POOR; the edges belong to the better band."""
    if higher_is_better:
        return GOOD if value >= good else FAIR if value >= fair else POOR
    return GOOD if value <= good else FAIR if value <= fair else POOR


def times(ratio: float) -> str:
    """3.46 → "3.5×", 12.4 → "12×": as precise as a ratio of noisy scores means."""
    return f"{ratio:.1f}×" if ratio < 10 else f"{ratio:.0f}×"


def grade_fd(c: Comparison) -> tuple[str, str] | None:
    if c.ratio is None:
        return None  # no floor, or a floor of 0: no ratio to grade
    return (band(c.ratio, FD_RATIO_GOOD, FD_RATIO_FAIR, higher_is_better=False),
            f"FD {times(c.ratio)} the real floor (good: ≤ {FD_RATIO_GOOD:g}×)")


def grade_share(c: Comparison) -> tuple[str, str] | None:
    if c.ratio is None:
        return None
    return (band(c.ratio, SHARE_GOOD, SHARE_FAIR, higher_is_better=True),
            f"{c.metric} {c.value:.3f}, floor {c.floor:.3f} ({c.ratio:.0%})")


def grade_coverage(c: Comparison) -> tuple[str, str] | None:
    if c.floor is None or c.floor <= 0:
        return None
    covered, total = round(c.value), round(c.floor)
    noun = "classes" if c.metric == "class_coverage" else "modes"
    if covered >= total:
        return GOOD, f"all {total} {noun} covered"
    return (FAIR if covered >= COVERAGE_FAIR * total else POOR), f"{covered} of {total} {noun} covered"


def grade_nn_ratio(c: Comparison) -> tuple[str, str]:
    grade = band(c.value, NN_RATIO_GOOD, NN_RATIO_FAIR, higher_is_better=True)
    why = "copies training images" if grade == POOR else "close to training images" if grade == FAIR else \
        "no copying of training images"
    return grade, f"nn_ratio {c.value:.2f}: {why}"


def grade_reverse_kl(c: Comparison) -> tuple[str, str] | None:
    if c.distance is None:
        return None
    return (band(c.distance, REVERSE_KL_GOOD, REVERSE_KL_FAIR, higher_is_better=False),
            f"reverse_kl {c.distance:.3g} above its floor")


GRADED = {"fd": grade_fd, "precision": grade_share, "recall": grade_share, "class_coverage": grade_coverage,
          "nn_ratio": grade_nn_ratio, "modes": grade_coverage, "hq_fraction": grade_share,
          "reverse_kl": grade_reverse_kl}


def grade_of(c: Comparison | None) -> tuple[str, str] | None:
    return None if c is None else GRADED[base_metric(c.metric)](c)


def notes(by_metric: dict[str, Comparison]) -> tuple[str, ...]:
    """What a reader would otherwise wonder about: a negative KID floor, bits/dim without a floor. Short lines: the
    asset page's metadata column (about 55 characters at 1,280 px) never cuts them."""
    found = []
    for c in by_metric.values():
        if base_metric(c.metric) == "kid" and c.floor is not None and c.floor < 0:
            found.append(f"{c.metric} {c.distance:+.2g} over floor {c.floor:.1e} (unbiased)")
        if c.metric == "bits_per_dim":
            found.append(f"bits/dim {c.value:.3g} (real data has no floor)")
    return tuple(found)


def display_number(column: str, value) -> float | int | None:
    """A number rounded to what it means: counts whole, fractions to 3 decimals, the FD ratio to 2, the rest (distances,
    scores of 2,000 samples) to 3 significant digits."""
    value = finite(value)
    if value is None:
        return None
    base = base_metric(column)
    if base in COUNT_METRICS or column == "step":
        return int(round(value))
    if base in FRACTION_METRICS:
        return round(value, 3)
    if column == "fd_ratio":
        return round(value, 2)
    return float(f"{value:.3g}")


def with_verdict_columns(scores: pd.DataFrame) -> pd.DataFrame:
    """The score table for display: `grade` and `fd_ratio` per checkpoint after `name` and `step` (the real floor's
    fd_ratio is 1 by definition, its grade empty). A copy: the stored table keeps its schema."""
    floor = floor_of(scores)
    floor_fd = None if floor is None or "fd" not in scores else finite(floor["fd"])
    shown = scores.copy()
    checkpoints = shown["name"] != REAL_FLOOR
    shown["grade"] = [verdict_of(scores, name).grade if is_checkpoint else None
                      for name, is_checkpoint in zip(shown["name"], checkpoints)]
    if floor_fd is not None and abs(floor_fd) >= NEAR_ZERO:
        shown["fd_ratio"] = shown["fd"].astype(float) / floor_fd
    else:
        shown["fd_ratio"] = float("nan")
    return shown[["name", "step", "grade", "fd_ratio", *metric_columns(scores)]]


def verdict_markdown(verdict: Verdict) -> str:
    """The grade in bold, then the reasons as a short list: the first thing an asset page shows."""
    ratio = "" if verdict.fd_ratio is None else f" (FD {times(verdict.fd_ratio)} the real floor)"
    lines = [f"**{verdict.grade}**{ratio}: checkpoint `{verdict.checkpoint}`", ""]
    return "\n".join(lines + [f"- {reason}" for reason in verdict.reasons])
