"""Training charts as PNG bytes (matplotlib's Agg canvas: no display, no global pyplot state)."""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def render_loss_curves_png(history: pd.DataFrame) -> bytes:
    """Two panels: the players' costs, and D's mean output on real and on generated images."""
    figure = Figure(figsize=(8, 3), dpi=100)
    FigureCanvasAgg(figure)
    costs, outputs = figure.subplots(1, 2)
    costs.plot(history["step"], history["loss_d"], label="J(D)")
    costs.plot(history["step"], history["loss_g"], label="J(G)")
    costs.set_xlabel("step")
    costs.legend()
    outputs.plot(history["step"], history["d_x"], label="D(x)")
    outputs.plot(history["step"], history["d_g_z"], label="D(G(z))")
    outputs.set_ylim(0, 1)
    outputs.set_xlabel("step")
    outputs.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
