"""`image_folder`: a user's own images (PNG, JPEG, WebP), one sub-folder per class or none.

Each file is decoded with Pillow, turned upright by its EXIF tag, flattened onto white where it is
transparent, converted to grey or RGB, then scaled so its shorter side fits and centre-cropped to a
square (`ImageOps.fit`): mixed sizes and modes all come out the configured shape. Files are taken in
sorted path order and an image's id is its position in that listing, so the same files always give
the same dataset (and content hash), and a skipped file leaves a gap instead of renumbering the rest.
The folder-level checks below (the root, symlinks, the class layout) all run before any file is decoded.

What is read: every non-hidden regular file under `dataset.root` (hidden ones, `.DS_Store`, and
everything in hidden folders, are not listed; sockets, FIFOs and devices are never opened). A file is
read by its content, never its name: only Pillow's PNG, JPEG (and MPO, a JPEG with extra pictures,
whose first is read) and WebP decoders are ever run on it, so a TIFF or GIF renamed `.png` is refused
as "TIFF data (named .png)" and `notes.txt` as "not a PNG, JPEG or WebP image". 8-bit modes are
converted by Pillow; 16-bit grey (`I;16`, and PNG's `I`) is scaled v → round(v / 257), never clipped
(Pillow itself reduces 16-bit RGB(A) to its high byte, within 1 of that); any other mode (`F`, `I` of
another format) is refused naming it. Unreadable or refused files fail the ingestion, naming them all,
unless `skip_bad_files: true` skips them (their count goes to the metadata). A dangling symlink is
such a file.

What is refused as a whole: a `dataset.root` that is, after its symlinks are resolved, the filesystem
root, a top-level system folder (`/etc`, `/usr`, `/tmp`, `/home`, … see `common.SYSTEM_DIRS`) or the
home folder itself. Symlinks are followed only inside the resolved root and only to something not
read otherwise: one that resolves outside the root, points back into a folder that holds it (a loop),
or reaches a folder or file read already (a duplicate) fails the ingestion naming the link and its
target; each real folder is walked once, so no layout of links can recurse. Every class must leave at
least one image in each split, or the real floor is undefined.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gan_assets.core.config import DatasetConfig
from gan_assets.core.data.images import ImageSet

from .common import SPLIT_SEED, DatasetError, refuse_system_root, require_dir, stratified_split

FORMATS = ("PNG", "JPEG", "WEBP")  # the only Pillow decoders ever run on a user's file
READ_FORMATS = {*FORMATS, "MPO"}  # MPO: what the JPEG decoder calls a JPEG holding extra pictures (phones)
EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}  # Pillow converts exactly
SIXTEEN_BIT_GREY = {"I;16", "I;16B", "I;16L", "I;16N"}  # and "I" from a PNG: both 16-bit grey
# Content signatures of formats that are not read, to name them in the error: (offset, bytes, name).
FOREIGN = ((0, b"II*\0", "TIFF"), (0, b"MM\0*", "TIFF"), (0, b"II+\0", "BigTIFF"), (0, b"GIF8", "GIF"),
           (0, b"\0\0\1\0", "ICO"), (0, b"%PDF", "PDF"), (0, b"8BPS", "PSD"), (0, b"qoif", "QOI"),
           (0, b"\xff\x0a", "JPEG XL"), (4, b"JXL ", "JPEG XL"), (8, b"avif", "AVIF"), (8, b"avis", "AVIF"),
           (8, b"heic", "HEIC"), (8, b"heix", "HEIC"), (8, b"mif1", "HEIF"), (8, b"msf1", "HEIF"))
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
    refuse_system_root(root, "image_folder")
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
    tree = walk_root(root)
    files = sorted(tree.files.values())
    class_dirs = sorted(path for path in tree.dirs.values() if path != root and path.parent == root)
    if not labels or not class_dirs:
        if not files:
            raise DatasetError(f"image_folder: {root} is empty: put PNG, JPEG or WebP images in it "
                               "(one sub-folder per class)")
        if labels:
            raise DatasetError(f"image_folder: dataset.labels is true but {root} has no class sub-folders "
                               f"({len(files)} files at its top level); put each class in a sub-folder named "
                               "after it, or set dataset.labels: false")
        return Listing(files, np.zeros(len(files), dtype=np.int64), [root])
    loose = [path for path in files if path.parent == root]
    if loose:
        raise DatasetError(f"image_folder: {root} mixes class sub-folders with loose files ({_name(loose)}); "
                           "move them into a class folder or set dataset.labels: false")
    index = {d.name: k for k, d in enumerate(class_dirs)}
    per_class: list[list[Path]] = [[] for _ in class_dirs]
    for path in files:
        per_class[index[path.relative_to(root).parts[0]]].append(path)
    empty = [d for d, members in zip(class_dirs, per_class) if not members]
    if empty:
        raise DatasetError(f"image_folder: empty class folder(s) {_name(empty)}: every class needs images")
    labels_of = np.concatenate([np.full(len(members), k, dtype=np.int64) for k, members in enumerate(per_class)])
    return Listing([f for members in per_class for f in members], labels_of, class_dirs)


@dataclass
class Tree:
    """What `walk_root` found, each keyed by its real (resolved) path and valued by the path listed."""

    root: Path  # as configured: every listed path is under it
    real_root: Path
    dirs: dict[Path, Path] = field(default_factory=dict)
    files: dict[Path, Path] = field(default_factory=dict)  # a dangling link is keyed by its own path
    links: list[tuple[Path, Path]] = field(default_factory=list)  # (link, real folder holding it) to follow


def walk_root(root: Path) -> Tree:
    """Every non-hidden regular file under `root`, without ever leaving it, recursing or reading anything twice.

    The real folders are walked first without following links (`os.scandir`, entries not followed), then
    each symlink in sorted order: it must resolve inside the real root, a folder it reaches must not
    already have been walked (an ancestor of the link: a loop; any other: a duplicate), nor a file it
    reaches already listed. Each real folder is walked at most once, so this always ends.
    """
    tree = Tree(root, Path(os.path.realpath(root)))
    _walk(tree, root, tree.real_root)
    while tree.links:
        tree.links.sort()
        link, holder = tree.links.pop(0)
        target = Path(os.path.realpath(link))
        if target != tree.real_root and tree.real_root not in target.parents:
            raise DatasetError(f"image_folder: {link} is a symlink to {target}, outside dataset.root "
                               f"{tree.real_root}; copy what it points to into the dataset folder instead")
        if os.path.isdir(target):
            if target == holder or target in holder.parents:
                raise DatasetError(f"image_folder: {link} points back into {target} (a loop: every image would "
                                   "be read twice); remove the link")
            if target in tree.dirs:
                raise _twice(link, tree.dirs[target], target, "folder")
            _walk(tree, link, target)
        elif os.path.isfile(target):
            _add_file(tree, link, target)
        elif not os.path.exists(target):
            tree.files[link] = link  # dangling: listed, so reading it fails naming it
        # a link to a socket, FIFO or device: not a file, never opened
    return tree


def _walk(tree: Tree, top: Path, real_top: Path) -> None:
    stack = [(top, real_top)]
    while stack:
        folder, real = stack.pop()
        if real in tree.dirs:
            raise _twice(folder, tree.dirs[real], real, "folder")
        tree.dirs[real] = folder
        try:
            with os.scandir(folder) as scan:
                entries = sorted((entry.name, entry.is_symlink(), entry.is_dir(follow_symlinks=False),
                                  entry.is_file(follow_symlinks=False)) for entry in scan)
        except OSError as err:
            raise DatasetError(f"image_folder: cannot list the folder {folder}: {err}") from None
        for name, is_link, is_dir, is_file in entries:
            if name.startswith("."):
                continue
            if is_link:
                tree.links.append((folder / name, real))
            elif is_dir:
                stack.append((folder / name, real / name))
            elif is_file:
                _add_file(tree, folder / name, real / name)


def _add_file(tree: Tree, path: Path, real: Path) -> None:
    if real in tree.files:
        raise _twice(path, tree.files[real], real, "file")
    tree.files[real] = path


def _twice(path: Path, other: Path, real: Path, kind: str) -> DatasetError:
    first, second = sorted((path, other))
    return DatasetError(f"image_folder: {first} and {second} are the same {kind} {real} through a symlink (every "
                        f"image in it would be read twice); remove the link")


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
    """A file that is not a readable PNG, JPEG or WebP image, or whose pixels cannot be read without clipping."""


def decode(path: Path, size: int, channels: int) -> np.ndarray:
    """One file as uint8 C×size×size: upright, flattened, converted, scaled and centre-cropped."""
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path, formats=FORMATS) as image:  # no other decoder ever sees the file
            if image.format not in READ_FORMATS:
                raise BadImage(f"{image.format} data{_named(path)}: only PNG, JPEG and WebP are read")
            wide = sixteen_bit_grey(image)
            image.draft(mode, (size, size))  # JPEG: decode at the smallest scale still ≥ size
            upright = ImageOps.exif_transpose(image)
            eight = to_eight_bit(upright, image.info.get("transparency")) if wide else upright
            fitted = ImageOps.fit(_flatten(eight).convert(mode), (size, size), Image.Resampling.BICUBIC)
    except UnidentifiedImageError:
        raise BadImage(_foreign(path)) from None
    except DECODE_ERRORS as err:
        raise BadImage(f"{type(err).__name__}: {err}") from None
    array = np.asarray(fitted)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _named(path: Path) -> str:
    return f" (named {path.suffix})" if path.suffix else " (no suffix)"


def _foreign(path: Path) -> str:
    """Why a file no read decoder accepts is refused, naming its real format when its signature is known."""
    try:
        with open(path, "rb") as file:
            head = file.read(16)
    except OSError:
        head = b""
    known = next((name for offset, magic, name in FOREIGN if head[offset:offset + len(magic)] == magic), None)
    if known is None and head[:2] == b"BM" and head[6:10] == b"\0\0\0\0":
        known = "BMP"
    if known is not None and (known not in ("AVIF", "HEIC", "HEIF") or head[4:8] == b"ftyp"):
        return f"{known} data{_named(path)}: only PNG, JPEG and WebP are read"
    return "not a PNG, JPEG or WebP image"


def sixteen_bit_grey(image: Image.Image) -> bool:
    """Whether `image` holds 16-bit grey (to scale); False for a mode Pillow converts exactly; BadImage otherwise."""
    if image.mode in SIXTEEN_BIT_GREY or (image.mode == "I" and image.format == "PNG"):
        return True
    if image.mode not in EIGHT_BIT_MODES:
        raise BadImage(f"pixel mode {image.mode} cannot be read without clipping: save it as an 8- or 16-bit PNG, "
                       "JPEG or WebP")
    return False


def to_eight_bit(image: Image.Image, transparent: object) -> Image.Image:
    """16-bit grey as 8-bit: v → round(v / 257), exact on 0…65535 → 0…255 (257 is odd: no ties); a tRNS grey
    value becomes an alpha channel, so flattening still puts it on white."""
    values = np.asarray(image).astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise BadImage(f"pixel mode {image.mode} holds values outside 0…65535 "
                       f"({values.min()}…{values.max()}): they cannot be read without clipping")
    grey = Image.fromarray(((values + 128) // 257).astype(np.uint8))
    if not isinstance(transparent, int):
        return grey
    return Image.merge("LA", (grey, Image.fromarray(np.where(values == transparent, 0, 255).astype(np.uint8))))


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
