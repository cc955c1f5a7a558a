"""The mode-collapse benchmark's table (issue 13): rows of `benchmarks/bench_modes.py` beside PacGAN's Table 1.

Shared by the benchmark (which writes `results.jsonl` and `table.md`) and the `leaderboard` asset (which shows
the same table in the UI from the `results.jsonl` under the storage root). Never imports dagster.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

DATASETS = ("ring8", "grid25")
METRIC_NAMES = ("modes", "hq_fraction", "reverse_kl")
RESULTS_FILE = Path("bench_modes") / "results.jsonl"  # under the storage root (`data/` by default)

# PacGAN (Lin et al. 2018) Table 1, 10 trials, ~400k iterations: (modes mean, modes sem, hq %, reverse KL).
PUBLISHED = {
    "ring8": {"GAN": (6.3, 0.5, 98.2, 0.45), "PacGAN4": (7.8, 0.1, 95.9, 0.07)},
    "grid25": {"GAN": (17.3, 0.8, 94.8, 0.70), "PacGAN4": (24.8, 0.2, 93.6, 0.04)},
}
TARGETS = {"ring8": (8, 0.98, 0.02), "grid25": (25, 0.95, 0.03)}  # issue 13: modes, hq >=, reverse KL <=


def mean_sem(values: list[float]) -> dict[str, float]:
    """Mean and standard error over seeds (sample std / sqrt(n); 0 for one seed)."""
    mean = statistics.fmean(values)
    sem = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"mean": mean, "sem": sem}


def summarise(dataset: str, name: str, seeds: list[int], per_seed: list[dict], steps: int, seconds: float) -> dict:
    """One configuration's JSON line: each metric's mean and standard error over its seeds."""
    row = {"dataset": dataset, "config": name, "seeds": list(seeds)}
    row.update({m: mean_sem([r[m] for r in per_seed]) for m in METRIC_NAMES})
    row.update({"steps": steps, "seconds": round(seconds, 1)})
    return row


def meets_target(row: dict) -> bool:
    """Every seed covers every mode ("over 5 seeds, 8/8 modes" is each seed's, not the mean's rounding) when
    the per-seed figures are there; high quality and reverse KL are judged on the mean."""
    modes, hq, rkl = TARGETS[row["dataset"]]
    per = row.get("per_seed")
    covered = all(r["modes"] >= modes for r in per) if per else row["modes"]["mean"] >= modes
    return covered and row["hq_fraction"]["mean"] >= hq and row["reverse_kl"]["mean"] <= rkl


def markdown_table(rows: list[dict]) -> str:
    """Each dataset's published PacGAN Table 1 rows and the target, then every configuration measured on it."""
    lines = ["| dataset | configuration | modes | high quality | reverse KL | steps | seconds | target |",
             "|---|---|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        mine = [r for r in rows if r["dataset"] == dataset]
        if not mine:
            continue
        for label, (m, m_sem, hq, rkl) in PUBLISHED[dataset].items():
            lines.append(f"| {dataset} | published {label} (PacGAN Table 1, ~400k steps) | {m:.1f} ± {m_sem:.1f} "
                         f"| {hq:.1f}% | {rkl:.2f} | | | |")
        modes, hq, rkl = TARGETS[dataset]
        lines.append(f"| {dataset} | target (issue 13) | {modes} | ≥ {hq:.0%} | ≤ {rkl:.2f} | | ≤ 1800 | |")
        for r in mine:
            ok = "met" if meets_target(r) else "not met"
            lines.append(f"| {dataset} | {r['config']} | {r['modes']['mean']:.1f} ± {r['modes']['sem']:.1f} | "
                         f"{100 * r['hq_fraction']['mean']:.1f} ± {100 * r['hq_fraction']['sem']:.1f}% | "
                         f"{r['reverse_kl']['mean']:.3f} ± {r['reverse_kl']['sem']:.3f} | {r['steps']} | "
                         f"{r['seconds']:.0f} | {ok} |")
    return "\n".join(lines) + "\n"


def read_results(path: Path) -> list[dict]:
    """The rows of a `results.jsonl`; a line that is not a benchmark row is an error naming the file and line."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if row["dataset"] not in DATASETS or not all(isinstance(row[m]["mean"], (int, float)) for m in METRIC_NAMES):
                raise ValueError(f"dataset must be one of {DATASETS} and {METRIC_NAMES} each a {{mean, sem}}")
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number} is not a bench_modes result row: {error}") from error
        rows.append(row)
    return rows
