"""`image_folder`: a user's own images (PNG, JPEG, WebP), one sub-folder per class or none.

Each file is decoded with Pillow, turned upright by its EXIF tag, flattened onto white where it is
transparent, converted to grey or RGB, then scaled so its shorter side fits and centre-cropped to a
square (`ImageOps.fit`): mixed sizes and modes all come out the configured shape. Files are taken in
sorted path order and an image's id is its position in that listing, so the same files always give
the same dataset (and content hash), and a skipped file leaves a gap instead of renumbering the rest.
Unreadable files (not PNG/JPEG/WebP, truncated, corrupt) fail the ingestion, naming them all, unless
`skip_bad_files: true` skips them (their count goes to the metadata). Hidden files (`.DS_Store`) are
not listed. Every class must leave at least one image in each split, or the real floor is undefined.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.images import ImageSet

from .common import SPLIT_SEED, DatasetError, require_dir, stratified_split

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
SHOWN = 10  # files named in a message; the rest are counted
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, KeyError, IndexError, struct.error,
                 Image.DecompressionBombError)  # what Pillow raises on a damaged or foreign file


@dataclass(frozen=True)
class Listing:
    files: list[Path]
    labels: np.ndarray  # class index of each file
    class_dirs: list[Path]  # one per class (the root itself when unlabelled)


def load_image_folder(config: DatasetConfig) -> ImageSet:
    root = require_dir(Path(config.root), "image_folder", "point it at a folder of images, one sub-folder per class")
    listing = list_images(root, config.labels)
    images, good, bad = decode_all(listing.files, config.image_size, config.channels)
    if bad and not config.skip_bad_files:
        raise DatasetError(f"image_folder: {len(bad)} unreadable file(s) under {root}: {_name(bad)}; fix or "
                           "remove them, or set dataset.skip_bad_files: true to skip them")
    labels = listing.labels[good]
    check_classes(labels, listing.class_dirs, config.held_out_fraction)
    extra = {"licence": f"user images from {root}; their licence is the user's", "skipped_files": str(len(bad))}
    if bad:
        extra["skipped_examples"] = json.dumps([str(path) for path, _ in bad[:SHOWN]])
    split = stratified_split(labels, config.held_out_fraction, SPLIT_SEED)
    names = tuple(d.name for d in listing.class_dirs) if config.labels else ("all",)
    return ImageSet(images, labels, split, good, "image_folder", names, extra)


def list_images(root: Path, labels: bool) -> Listing:
    entries = [p for p in sorted(root.iterdir()) if not p.name.startswith(".")]
    class_dirs, loose = [p for p in entries if p.is_dir()], [p for p in entries if p.is_file()]
    if not labels or not class_dirs:
        files = _files_under(root)
        if not files:
            raise DatasetError(f"image_folder: {root} is empty: put PNG, JPEG or WebP images in it "
                               "(one sub-folder per class)")
        if labels:
            raise DatasetError(f"image_folder: dataset.labels is true but {root} has no class sub-folders "
                               f"({len(files)} files at its top level); put each class in a sub-folder named "
                               "after it, or set dataset.labels: false")
        return Listing(files, np.zeros(len(files), dtype=np.int64), [root])
    if loose:
        raise DatasetError(f"image_folder: {root} mixes class sub-folders with loose files ({_name(loose)}); "
                           "move them into a class folder or set dataset.labels: false")
    per_class = [_files_under(d) for d in class_dirs]
    empty = [d for d, files in zip(class_dirs, per_class) if not files]
    if empty:
        raise DatasetError(f"image_folder: empty class folder(s) {_name(empty)}: every class needs images")
    labels_of = np.concatenate([np.full(len(files), k, dtype=np.int64) for k, files in enumerate(per_class)])
    return Listing([f for files in per_class for f in files], labels_of, class_dirs)


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _name(items: list) -> str:
    shown = ", ".join(f"{p[0]} ({p[1]})" if isinstance(p, tuple) else str(p) for p in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def decode_all(files: list[Path], size: int, channels: int) -> tuple[np.ndarray, np.ndarray, list[tuple[Path, str]]]:
    """(images of the readable files, their positions in `files`, (path, reason) of the others)."""
    out = np.empty((len(files), channels, size, size), dtype=np.uint8)
    good: list[int] = []
    bad: list[tuple[Path, str]] = []
    for index, path in enumerate(files):
        try:
            out[len(good)] = decode(path, size, channels)
        except BadImage as err:
            bad.append((path, str(err)))
            continue
        good.append(index)
    return out[:len(good)], np.array(good, dtype=np.int64), bad


class BadImage(Exception):
    """A file that is not a readable PNG, JPEG or WebP image."""


def decode(path: Path, size: int, channels: int) -> np.ndarray:
    """One file as uint8 C×size×size: upright, flattened, converted, scaled and centre-cropped."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise BadImage("not a PNG, JPEG or WebP file")
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as image:
            image.draft(mode, (size, size))  # JPEG: decode at the smallest scale still ≥ size
            upright = ImageOps.exif_transpose(image)
            fitted = ImageOps.fit(_flatten(upright).convert(mode), (size, size), Image.Resampling.BICUBIC)
    except DECODE_ERRORS as err:
        raise BadImage(f"{type(err).__name__}: {err}") from None
    array = np.asarray(fitted)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _flatten(image: Image.Image) -> Image.Image:
    """Transparent pixels onto white (what a viewer shows), so RGBA, LA and palette transparency agree."""
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return image
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)


def check_classes(labels: np.ndarray, class_dirs: list[Path], held_out_fraction: float) -> None:
    """Each class must put at least one image in train and one in held_out (the real floor needs both)."""
    counts = np.bincount(labels, minlength=len(class_dirs))
    short = [(d, int(n)) for d, n in zip(class_dirs, counts)
             if round(held_out_fraction * n) < 1 or n - round(held_out_fraction * n) < 1]
    if short:
        need = next(n for n in range(2, 100_000) if 1 <= round(held_out_fraction * n) < n)
        listed = ", ".join(f"{d} ({n} image{'s' if n != 1 else ''})" for d, n in short[:SHOWN])
        raise DatasetError(f"image_folder: too few usable images in {listed}: with held_out_fraction "
                           f"{held_out_fraction} each class needs at least {need} so train and held_out both get one")
