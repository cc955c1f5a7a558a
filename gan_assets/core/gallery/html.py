"""The gallery as one self-contained HTML page: every image embedded, no script, nothing fetched.

The page is built from sections (a title, a sentence that says what to look for, then images, tables or
text), so the asset composes whatever views its data supports and this module only lays them out.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gan_assets.core.png import png_bytes
from gan_assets.core.storage import write_bytes_atomic

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
p.note { color: #555; max-width: 60em; }
img { border: 1px solid #eee; max-width: 100%; height: auto; }
img.pixels { image-rendering: pixelated; }
figure { display: inline-block; margin: 0.4em; vertical-align: top; text-align: center; }
figcaption { font-size: 0.85em; color: #444; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
th { background: #f4f4f4; } td.label, th.label { text-align: left; }
.best { outline: 3px solid #d62728; }
"""


@dataclass(frozen=True)
class Figure:
    image: np.ndarray | bytes  # uint8 pixels (shown enlarged without smoothing), or PNG bytes (matplotlib charts)
    caption: str = ""
    width: int | None = None  # display width in CSS pixels (small images are shown enlarged, pixelated)
    best: bool = False


@dataclass
class Section:
    title: str
    note: str = ""
    figures: list[Figure] = field(default_factory=list)
    table: pd.DataFrame | None = None
    rows: list[tuple[str, Figure | None]] = field(default_factory=list)  # a label beside each image
    items: list[str] = field(default_factory=list)  # short sentences, listed under the note (the verdict's reasons)


def data_uri(image: np.ndarray | bytes) -> str:
    png = image if isinstance(image, bytes) else png_bytes(image)
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _figure(figure: Figure) -> str:
    width = f' width="{figure.width}"' if figure.width else ""
    classes = " ".join((["pixels"] if isinstance(figure.image, np.ndarray) else []) + (["best"] if figure.best else []))
    best = f' class="{classes}"' if classes else ""
    caption = f"<figcaption>{html.escape(figure.caption)}</figcaption>" if figure.caption else ""
    return (f'<figure><img src="{data_uri(figure.image)}" alt="{html.escape(figure.caption)}"{width}{best}>'
            f"{caption}</figure>")


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f'<th class="label">{html.escape(str(c))}</th>' if i == 0 else f"<th>{html.escape(str(c))}</th>"
                   for i, c in enumerate(frame.columns))
    body = []
    for _, row in frame.iterrows():
        cells = [f'<td class="label">{html.escape(_cell(v))}</td>' if i == 0 else f"<td>{html.escape(_cell(v))}</td>"
                 for i, v in enumerate(row)]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"  # 4 significant digits, as the UI's table
    return str(value)


def _section(section: Section) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    if section.note:
        parts.append(f'<p class="note">{html.escape(section.note)}</p>')
    if section.items:
        parts.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in section.items) + "</ul>")
    if section.rows:
        rows = "".join(f'<tr><td class="label">{html.escape(label)}</td><td>{_figure(f) if f else "none"}</td></tr>'
                       for label, f in section.rows)
        parts.append(f"<table>{rows}</table>")
    parts.extend(_figure(f) for f in section.figures)
    if section.table is not None:
        parts.append(_table(section.table))
    return "\n".join(parts)


def render_page(title: str, summary: str, sections: list[Section]) -> str:
    body = "\n".join(_section(s) for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f'<p class="note">{html.escape(summary)}</p>\n{body}\n</body></html>\n')


def write_page(path: Path, title: str, summary: str, sections: list[Section]) -> Path:
    write_bytes_atomic(render_page(title, summary, sections).encode(), path)
    return path
