"""PNG helpers: image grids as uint8 arrays, PNG files and bytes, and inline markdown images for the UI."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from gan_assets.core.storage import atomic_path


def grid_array(images: torch.Tensor, nrow: int, padding: int = 2) -> np.ndarray:
    """Float images in [-1, 1] (N×C×H×W) → one uint8 H×W×3 grid, `nrow` images per row."""
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=padding, normalize=True,
                     value_range=(-1, 1), pad_value=1.0)
    return (grid.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())


def uint8_to_signed(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float().div(127.5).sub(1.0)


def save_png(array: np.ndarray, path: Path) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path


def png_bytes(array: np.ndarray, max_side: int | None = None) -> bytes:
    image = Image.fromarray(array)
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def markdown_image(array: np.ndarray, alt: str, max_side: int = 256) -> str:
    """An inline data-URI image for Dagster's markdown metadata (the UI renders it in place)."""
    return markdown_png(png_bytes(array, max_side), alt)


def markdown_png(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
