"""What the `dataset` asset shows about its data: counts per split and class, and one picture
(a grid of each class's first images, or for 2-D points a scatter coloured by mode). Pure numpy, so
it is tested without Dagster."""

from __future__ import annotations

import numpy as np

from gan_assets.core.data.images import SPLITS, ImageSet, PointSet
from gan_assets.core.png import grid_array, uint8_to_signed

LISTED_CLASSES = 20  # beyond this (stacked_mnist's 1,000 modes) the table summarises the rest
PALETTE = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]], np.uint8)


def split_counts(data: ImageSet | PointSet) -> dict[str, int]:
    return {f"rows_{split}": int((data.split == split).sum()) for split in SPLITS}


def class_counts(data: ImageSet | PointSet) -> np.ndarray:
    """(classes, 2) examples per class in train and held_out."""
    return np.stack([np.bincount(data.labels[data.split == s], minlength=len(data.class_names)) for s in SPLITS], 1)


def class_histogram_markdown(data: ImageSet | PointSet) -> str:
    counts = class_counts(data)
    lines = ["| class | train | held_out |", "|---|---:|---:|"]
    lines += [f"| {name} | {a} | {b} |" for name, (a, b) in zip(data.class_names[:LISTED_CLASSES], counts)]
    rest = counts[LISTED_CLASSES:]
    if len(rest):
        lines.append(f"| … {len(rest)} more | {rest[:, 0].min()}–{rest[:, 0].max()} | "
                     f"{rest[:, 1].min()}–{rest[:, 1].max()} |")
    return "\n".join(lines)


def thumbnail(data: ImageSet | PointSet) -> np.ndarray:
    """An H×W×3 uint8 picture of the data."""
    return scatter(data.points, data.labels) if isinstance(data, PointSet) else thumbnail_grid(data)


def thumbnail_grid(data: ImageSet, per_class: int = 8) -> np.ndarray:
    """One row per class (up to 10 classes), its first `per_class` images; else the first 64 images."""
    rows = [np.flatnonzero(data.labels == c)[:per_class] for c in range(min(len(data.class_names), 10))]
    picked = np.concatenate([r for r in rows if len(r) == per_class] or [np.arange(min(len(data.ids), 64))])
    return grid_array(uint8_to_signed(data.images[picked]), nrow=per_class)


def scatter(points: np.ndarray, labels: np.ndarray, side: int = 256, limit: int = 5000) -> np.ndarray:
    """Up to `limit` points as 2×2 dots on white, coloured by mode, on square axes centred on 0."""
    points, labels = points[:limit], labels[:limit]
    extent = float(np.abs(points).max()) * 1.1 if len(points) else 1.0
    pixels = np.clip(((points / extent + 1) / 2 * (side - 2)).astype(int), 0, side - 2)
    canvas = np.full((side, side, 3), 255, dtype=np.uint8)
    rows, cols = side - 2 - pixels[:, 1], pixels[:, 0]  # y grows upwards
    for dr in (0, 1):
        for dc in (0, 1):
            canvas[rows + dr, cols + dc] = PALETTE[labels % len(PALETTE)]
    return canvas
