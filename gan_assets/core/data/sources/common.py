"""What every source shares: the error type, the split, and chunked resizing into one uint8 block.

Sources stream: they know (or bound) the number of images before decoding any, allocate the final
uint8 N×C×H×W block once, and resize chunk by chunk into it. Peak memory is then that block plus one
chunk, instead of the whole raw dataset plus the resized copy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# The split is part of the dataset's identity, not of the experiment's seed: every experiment on the
# same data must measure against the same held-out images.
SPLIT_SEED = 20161231
CHUNK = 4096  # images read at a time from a file
RESIZE_BYTES = 4 << 20  # float32 working copy of one resize step; larger only adds peak memory


class DatasetError(ValueError):
    """Bad or missing input data; the message names the problem, the path and the fix."""


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of a uint8 N×C×H×W batch, rounded back to uint8."""
    if images.shape[-2:] == (size, size):
        return images
    tensor = torch.from_numpy(images.astype(np.float32))  # a float copy: read-only inputs are fine
    shrinking = size < images.shape[-1]
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
    return resized.round_().clamp_(0, 255).to(torch.uint8).numpy()


def match_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Grey to RGB by repetition, RGB to grey by ITU-R 601 luma; identity otherwise."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1:
        return np.repeat(images, channels, axis=1)
    luma = np.tensordot(np.array([0.299, 0.587, 0.114]), images[:, :3].astype(np.float64), axes=(0, 1))
    return np.rint(luma)[:, None].astype(np.uint8)


def prepare(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Resize and convert channels, in the order that touches fewer pixels."""
    if images.shape[1] > channels:
        return resize_uint8(match_channels(images, channels), size)
    return match_channels(resize_uint8(images, size), channels)


def fill(capacity: int, chunks: Iterable[np.ndarray], size: int, channels: int) -> np.ndarray:
    """Prepare each raw chunk into one preallocated block; returns the filled rows (a view, no copy)."""
    out = np.empty((capacity, channels, size, size), dtype=np.uint8)
    filled = 0
    for chunk in chunks:
        side = max(size, *chunk.shape[-2:])
        step = max(1, RESIZE_BYTES // (4 * max(channels, chunk.shape[1]) * side * side))
        for start in range(0, len(chunk), step):
            part = prepare(chunk[start:start + step], size, channels)
            out[filled:filled + len(part)] = part
            filled += len(part)
    return out[:filled]


def stratified_split(labels: np.ndarray, held_out_fraction: float, seed: int) -> np.ndarray:
    """Per class, a seeded shuffle puts round(fraction·n_c) images in `held_out`, the rest in `train`."""
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), "train", dtype=object)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen = rng.permutation(members)[: round(held_out_fraction * len(members))]
        split[chosen] = "held_out"
    return split.astype(str)


def require_dir(root: Path, what: str, fix: str) -> Path:
    """The folder a source reads, or an error that says where it looked and how to fill it."""
    if not root.is_dir():
        kind = "is not a folder" if root.exists() else "does not exist"
        shown = str(root) if root.is_absolute() else f"{root} ({root.resolve()})"
        raise DatasetError(f"{what}: dataset.root {shown} {kind}; {fix}")
    return root


# Folders no dataset is read from as a whole: walking one reads the system, devices or every user's files.
# Their sub-folders (/tmp/x, /home/me/pictures, /mnt/usb) stay allowed.
SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt",
               "/nix", "/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys", "/tmp", "/usr", "/var",
               "/Applications", "/Library", "/System", "/Users", "/Volumes", "/private")  # the last: macOS


KERNEL_DIRS = ("/proc", "/sys", "/dev")  # not even a sub-folder: files there are not images, and reads can block


def refuse_system_root(root: Path, what: str) -> Path:
    """`root` resolved through its symlinks, refused when it is the filesystem root, a top-level system
    folder (`SYSTEM_DIRS`) or the home folder itself, which no dataset is read from as a whole."""
    real = Path(os.path.realpath(root))
    why = None
    if real == Path(real.anchor):
        why = "the filesystem root"
    elif real in {Path(os.path.realpath(d)) for d in SYSTEM_DIRS}:
        why = "a system folder"
    elif any(Path(d) in real.parents for d in KERNEL_DIRS):
        why = "inside a kernel or device folder (its files can block when read)"
    elif real == _home():
        why = "your home folder itself"
    if why:
        shown = str(root) if str(root) == str(real) else f"{root} (resolves to {real})"
        raise DatasetError(f"{what}: dataset.root {shown} is {why}: reading all of it would walk files that are not "
                           "your dataset; point it at the folder that holds only your images")
    return real


def _home() -> Path | None:
    try:
        return Path(os.path.realpath(Path.home()))
    except (RuntimeError, KeyError, OSError):  # no HOME and no passwd entry
        return None
