"""`make sample-export`: N samples from an exported generator as one PNG grid, with plain torch and the card alone.

    python -m pipelines.cli.sample_export EXPORT_DIR --n 64 --out grid.png [--labels 0,1,2] [--seed 0]
    python -m pipelines.cli.sample_export --experiment experiments/digits-dcgan.yaml   # its newest export

It imports nothing of this project (torch, numpy, PIL and the standard library only): what it does, anyone holding
the export folder can do. The files are checked against the card's sha256 before the program is loaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

PADDING = 2  # pixels between grid images, white: as the pipeline's gallery draws its grids
SCATTER_SIDE = 512


class ExportUnusable(RuntimeError):
    """The folder is not an export this command can sample (missing, altered, or without a program)."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        folder = Path(args.export_dir) if args.export_dir else newest_export(Path(args.storage_root), args.experiment)
        card = verified_card(folder)
        samples = draw(folder, card, args.n, args.seed, parse_labels(args.labels))
    except ExportUnusable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else folder.parent / f"{folder.name}-samples.png"
    picture = scatter(samples) if card["output"]["name"] == "points" else grid(samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(out, format="PNG")
    print(out)
    print(card.get("headline", ""))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipelines.cli.sample_export", description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", nargs="?", help="an export folder (with card.json); default: --experiment's newest")
    parser.add_argument("--experiment", default="experiments/digits-dcgan.yaml",
                        help="experiment file or name whose newest export to sample when EXPORT_DIR is not given")
    parser.add_argument("--storage-root", default=os.environ.get("GAN_STORAGE_ROOT", "data"),
                        help="where the pipeline writes (default: GAN_STORAGE_ROOT, else ./data)")
    parser.add_argument("--n", type=int, default=64, help="how many samples (default 64)")
    parser.add_argument("--out", help="the PNG to write (default: beside the folder, <folder>-samples.png)")
    parser.add_argument("--labels", help="a conditional G's classes, comma-separated, repeated over the samples "
                                         "(default: one class per grid row, as the gallery draws)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of z (default 0)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    return args


def newest_export(storage_root: Path, experiment: str) -> Path:
    """The export folder of `experiment` (a file path or a name) whose card was written last."""
    name = Path(experiment).stem if experiment.endswith((".yaml", ".yml")) else Path(experiment).name
    # the storage layout spelled out here, not imported (core/storage.py's experiment_path): this command imports
    # nothing of this project, so that anyone holding an export folder can run it
    folder = storage_root / "experiments" / name / "export"
    cards = sorted(folder.glob("*/card.json"), key=lambda p: p.stat().st_mtime)
    if not cards:
        raise ExportUnusable(f"no export of {name!r} under {folder}: "
                             "materialize exported_generator first (make run, or the UI), or pass EXPORT=<folder>")
    return cards[-1].parent


def verified_card(folder: Path) -> dict:
    """The folder's card, once every file it lists has the sha256 it records."""
    path = folder / "card.json"
    if not path.is_file():
        raise ExportUnusable(f"{folder} holds no card.json: not an export folder")
    card = json.loads(path.read_text())
    for name, expected in card["files"].items():
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest() if (folder / name).is_file() else "missing"
        if digest != expected:
            raise ExportUnusable(f"{folder / name} is {'missing' if digest == 'missing' else 'not the file exported'} "
                                 f"(sha256 {digest[:12]}…, card.json records {expected[:12]}…)")
    if not card.get("program"):
        raise ExportUnusable(f"{folder} has weights and a card but no program: {card.get('no_program_reason', '')}")
    return card


@torch.no_grad()
def draw(folder: Path, card: dict, n: int, seed: int, labels: list[int] | None) -> torch.Tensor:
    """n samples of the program for z ~ N(0, I) from `seed` (and the classes a conditional G needs)."""
    program = torch.export.load(str(folder / card["program"]["file"])).module()
    z_dim = card["inputs"]["z"]["shape"][1]
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))
    if "labels" not in card["inputs"]:
        return program(z)
    classes = card["inputs"]["labels"]["range"][1] + 1
    chosen = torch.tensor(labels).repeat(math.ceil(n / len(labels)))[:n] if labels else \
        (torch.arange(n) // columns(n)) % classes  # one class per row, as the gallery's grids
    if chosen.min() < 0 or chosen.max() >= classes:
        raise ExportUnusable(f"--labels must lie in 0..{classes - 1}")
    return program(z, chosen.long())


def parse_labels(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ExportUnusable(f"--labels {text!r} is not a comma-separated list of class numbers") from None


def columns(n: int) -> int:
    return math.ceil(math.sqrt(n))


def grid(images: torch.Tensor) -> np.ndarray:
    """Images in [0, 1] (N, C, H, W) → one uint8 H×W×3 grid, √N per row, white padding (the gallery's pixels:
    round(x · 255))."""
    n, channels, height, width = images.shape
    cols = columns(n)
    rows = math.ceil(n / cols)
    canvas = torch.ones(3, PADDING + rows * (height + PADDING), PADDING + cols * (width + PADDING))
    rgb = images.expand(-1, 3, -1, -1) if channels == 1 else images[:, :3]
    for i, image in enumerate(rgb):
        top, left = PADDING + (i // cols) * (height + PADDING), PADDING + (i % cols) * (width + PADDING)
        canvas[:, top:top + height, left:left + width] = image
    return canvas.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def scatter(points: torch.Tensor) -> np.ndarray:
    """(N, 2) points → a white square with a dot per point, axes scaled to the points' extent."""
    coords = points.numpy()
    extent = float(np.abs(coords).max()) * 1.1 or 1.0
    picture = Image.new("RGB", (SCATTER_SIDE, SCATTER_SIDE), "white")
    pen = ImageDraw.Draw(picture)
    for x, y in (coords / extent + 1) / 2 * (SCATTER_SIDE - 1):
        pen.ellipse((x - 2, SCATTER_SIDE - 1 - y - 2, x + 2, SCATTER_SIDE - 1 - y + 2), fill=(31, 119, 180))
    return np.asarray(picture)


if __name__ == "__main__":
    sys.exit(main())
