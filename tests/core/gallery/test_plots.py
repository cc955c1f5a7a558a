"""The charts: the best checkpoint marked, a count axis in whole numbers, the loss chart narrow enough not to clip."""

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from gan_assets.core.gallery import plots
from gan_assets.core.gallery.plots import render_loss_curves_png, render_score_curves_png

SCORES = pd.DataFrame({"step": [10, 20, 30], "fd": [9.0, 4.0, 5.0], "kid": [0.01, 0.002, 0.003],
                       "class_coverage": [9.0, 10.0, 10.0]})
FLOOR = pd.Series({"fd": 1.8, "kid": -2.86e-3, "class_coverage": 10.0})


def drawn_axes(monkeypatch, **kwargs) -> list:
    """The chart's axes, kept as `_png` receives the figure."""
    kept = []
    real_png = plots._png

    def keep(figure: Figure) -> bytes:
        kept.extend(figure.axes)
        return real_png(figure)

    monkeypatch.setattr(plots, "_png", keep)
    render_score_curves_png(SCORES, FLOOR, **kwargs)
    return [ax for ax in kept if ax.get_visible()]


def test_every_panel_marks_the_best_checkpoint(monkeypatch):
    axes = drawn_axes(monkeypatch, best_step=20)
    for ax in axes:
        assert any(list(line.get_xdata()) == [20.0, 20.0] and line.get_label() == "best" for line in ax.lines)
    assert "best" in [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert all(line.get_label() != "best" for ax in drawn_axes(monkeypatch) for line in ax.lines)  # unmarked by default


def test_class_coverage_has_whole_ticks_from_zero_to_the_class_count(monkeypatch):
    coverage = next(ax for ax in drawn_axes(monkeypatch) if ax.get_title() == "class_coverage")
    ticks = [t for t in coverage.get_yticks() if coverage.get_ylim()[0] <= t <= coverage.get_ylim()[1]]
    assert ticks[0] == 0 and ticks[-1] == 10 and all(float(t).is_integer() for t in ticks)


def test_kids_floor_line_is_labelled(monkeypatch):
    kid = next(ax for ax in drawn_axes(monkeypatch) if ax.get_title() == "kid")
    assert any("floor -2.9e-03" in t.get_text() for t in kid.texts)


def test_the_charts_fit_the_asset_pages_metadata_column():
    """About 500 px of the metadata column show at 1,280 px (tests/ui measures the page): the loss chart stacks its
    panels, the score chart sets them two by two."""
    history = pd.DataFrame({"step": np.arange(10), "loss_d": np.ones(10), "loss_g": np.ones(10),
                            "d_x": np.full(10, 0.6), "d_g_z": np.full(10, 0.4)})
    width, height = Image.open(io.BytesIO(render_loss_curves_png(history))).size
    assert width <= 480 and height > width / 2
    scores = pd.DataFrame({"step": [10, 20], "fd": [3.0, 2.0], "kid": [0.1, 0.05], "precision": [0.5, 0.6],
                           "recall": [0.4, 0.5], "class_coverage": [9, 10]})
    floor = pd.Series({"fd": 1.0, "kid": -0.001, "precision": 0.9, "recall": 0.9, "class_coverage": 10})
    width, height = Image.open(io.BytesIO(render_score_curves_png(scores, floor, best_step=20))).size
    assert width <= 480 and height > width  # three rows of two
