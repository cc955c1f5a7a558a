"""Training charts as PNG bytes, and scatters of 2-D samples as pixels (matplotlib's Agg canvas: no display,
no global pyplot state)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gan_assets.core.evaluation.metrics.modes import nearest_mode

# 460 px at 100 dpi: fits the asset page's metadata column at 1,280 px (tests/ui/test_ui.py checks nothing is cut off).
CHART_WIDTH_INCHES = 4.6


def render_loss_curves_png(history: pd.DataFrame) -> bytes:
    """Two panels stacked (CHART_WIDTH_INCHES wide, so the UI's metadata column never clips them): the players'
    costs, and D's mean output on real and on generated images; a likelihood family's logged bits/dim (and its terms)
    in one panel. Legends sit inside the axes."""
    if "loss_d" not in history:
        figure = Figure(figsize=(CHART_WIDTH_INCHES, 3), dpi=100)
        FigureCanvasAgg(figure)
        return _likelihood_curves(figure, history)
    figure = Figure(figsize=(CHART_WIDTH_INCHES, 4.6), dpi=100)
    FigureCanvasAgg(figure)
    costs, outputs = figure.subplots(2, 1, sharex=True)
    costs.plot(history["step"], history["loss_d"], label="J(D)")
    costs.plot(history["step"], history["loss_g"], label="J(G)")
    costs.set_ylabel("cost")
    costs.legend(loc="best", fontsize="small")
    outputs.plot(history["step"], history["d_x"], label="D(x)")
    outputs.plot(history["step"], history["d_g_z"], label="D(G(z))")
    outputs.set_ylim(0, 1)
    outputs.set_ylabel("D's mean output")
    outputs.set_xlabel("step")
    outputs.legend(loc="best", fontsize="small")
    return _png(figure)


def _likelihood_curves(figure: Figure, history: pd.DataFrame) -> bytes:
    axes = figure.subplots(1, 1)
    for column in (c for c in history.columns if c != "step"):
        axes.plot(history["step"], history[column], label=column)
    axes.set_xlabel("step")
    axes.set_ylabel("bits / dim (train minibatches)")
    axes.legend()
    return _png(figure)


SCORE_CHART_PER_ROW = 2
SCORE_CHART_COLUMNS = ("fd", "kid", "precision", "recall", "class_coverage", "modes", "hq_fraction", "reverse_kl")


COUNT_COLUMNS = ("class_coverage", "modes")  # whole classes or modes: integer ticks from 0


def render_score_curves_png(scores: pd.DataFrame, real_floor: pd.Series, *, best_step: int | None = None) -> bytes:
    """One panel per score the table has (FD, KID, precision, recall, coverage; modes on 2-D mixtures) over the
    checkpoints' steps, each with its real floor as a dashed line: is training still improving, or done? With
    `best_step`, the best checkpoint is marked on every panel (a dotted red line and a ring, legend "best")."""
    columns = [c for c in SCORE_CHART_COLUMNS if c in scores.columns]
    per_row = min(max(len(columns), 1), SCORE_CHART_PER_ROW)  # rows of two: fits the UI's metadata column
    rows = -(-max(len(columns), 1) // per_row)
    figure = Figure(figsize=(CHART_WIDTH_INCHES / SCORE_CHART_PER_ROW * per_row, 2.2 * rows), dpi=100)
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(rows, per_row)).ravel()
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    for ax, column in zip(axes, columns):
        steps, values = scores["step"].astype(float), scores[column].astype(float)
        ax.plot(steps, values, marker="o")
        floor = float(real_floor[column])
        ax.axhline(floor, linestyle="--", color="grey", label="real floor")
        if best_step is not None:
            _mark_best(ax, steps, values, best_step)
        if column in COUNT_COLUMNS:
            _count_axis(ax, values, floor)
        if column == "kid":  # an unbiased estimate: near 0 its floor can be negative, which looks like a bug unsaid
            ax.annotate(f"floor {floor:.1e} (unbiased, ≈0)", (0.02, floor), xycoords=("axes fraction", "data"),
                        xytext=(0, 2), textcoords="offset points", va="bottom", fontsize=6, color="grey")
        ax.set_title(column)
        ax.set_xlabel("step")
    if columns:
        axes[0].legend(fontsize="small")
    return _png(figure)


def _mark_best(ax, steps: pd.Series, values: pd.Series, best_step: int) -> None:
    """A dotted red line at the best checkpoint's step, and a ring on its value."""
    ax.axvline(float(best_step), linestyle=":", color="tab:red", label="best")
    at_best = values[steps == float(best_step)]
    if len(at_best):
        ax.plot([float(best_step)], [float(at_best.iloc[0])], marker="o", markersize=10, markerfacecolor="none",
                markeredgecolor="tab:red", linestyle="none")


def _count_axis(ax, values: pd.Series, floor: float) -> None:
    """Whole numbers from 0 to the class (or mode) count: a count axis in quarter steps reads as noise."""
    counts = [v for v in (floor, *values.to_numpy(dtype=float)) if np.isfinite(v)]
    top = int(round(max(counts, default=1.0)))
    ax.set_ylim(-0.5, top + 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))


def render_labelled_rows(grid: np.ndarray, row_labels: list[str], padding: int = 2) -> np.ndarray:
    """A torchvision grid (H×W×3 uint8, `padding` between cells) with a label left of each row, as pixels."""
    rows = len(row_labels)
    cell = (grid.shape[0] - padding) / rows
    figure = Figure(figsize=(grid.shape[1] / 100 + 1.0, grid.shape[0] / 100 + 0.1), dpi=100)
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_axes((0.9 / (grid.shape[1] / 100 + 1.0), 0.0, 1 - 0.9 / (grid.shape[1] / 100 + 1.0), 1.0))
    ax.imshow(grid, interpolation="nearest")
    ax.set_yticks([padding / 2 + cell * (r + 0.5) for r in range(rows)], row_labels, fontsize=8)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def high_quality(points: np.ndarray, centers: np.ndarray, std: float) -> np.ndarray:
    """The `modes` metric's own rule (PacGAN's: within 3 std of the nearest mode centre), per point."""
    if not len(centers) or not len(points):
        return np.zeros(len(points), dtype=bool)
    return nearest_mode(torch.from_numpy(np.asarray(points)), torch.from_numpy(np.asarray(centers)), std)[1].numpy()


def render_scatter_panels(panels: list[np.ndarray], centers: np.ndarray, titles: list[str],
                          side_inches: float = 3.0, std: float | None = None) -> np.ndarray:
    """A row of scatters, one per (n, 2) array of points, over the mode centres (red rings), as H×W×3 uint8.

    Every panel has the same square axes, fixed by the centres, so panels compare at a glance; samples
    far off the mixture fall outside the view, as they fall outside every mode. With the modes' `std`,
    high-quality samples (within 3 std of a centre) are blue and the others orange, and each title gives
    their share.
    """
    figure = Figure(figsize=(side_inches * len(panels), side_inches), dpi=80)
    canvas = FigureCanvasAgg(figure)
    reach = np.abs(centers).max() if len(centers) else max((np.abs(p).max() for p in panels if len(p)), default=1.0)
    limit = 1.25 * float(reach) + 0.25
    for ax, points, title in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels, titles):
        # centres underneath: the samples piled on a mode must stay visible
        ax.scatter(centers[:, 0], centers[:, 1], s=40, marker="o", facecolors="none", edgecolors="tab:red", zorder=1)
        good = high_quality(points, centers, std) if std else np.ones(len(points), dtype=bool)
        ax.scatter(points[good, 0], points[good, 1], s=3, alpha=0.5, color="tab:blue", linewidths=0, zorder=2)
        ax.scatter(points[~good, 0], points[~good, 1], s=3, alpha=0.5, color="tab:orange", linewidths=0, zorder=2)
        if std and len(points):
            title = f"{title}\n{good.mean():.0%} high quality"
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _png(figure: Figure) -> bytes:
    """The laid-out figure as PNG bytes."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
