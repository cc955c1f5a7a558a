"""Optional Inception scores, measured as the reference tools measure them, from a local weights file only.

Published FIDs are Fréchet distances in the 2048-d pool3 features of the 2015 TensorFlow Inception graph
(fid_inception.py), computed on uint8 images resized to 299x299. So are these:
- samples in [-1, 1] are quantised to uint8 first (what saving them as PNG files does); real images are uint8 already;
- `resize="clean"` is clean-fid's "clean" resize: PIL's bicubic filter on each channel as a float32 ('F') image,
  clipped to [0, 255], then scaled as the TensorFlow graph does, (x - 128) / 128;
- `resize="legacy_pytorch"` is pytorch-fid's (and clean-fid's "legacy_pytorch"): [0, 1] floats, bilinear
  `F.interpolate` (align_corners=False), then 2x - 1;
- grey images are resized once and repeated into the three channels (the same numbers as resizing each copy).
Weights cannot be downloaded here (and many users run offline), so the network is built only from a file the user
names, and only after its sha256 matches the one they state: a wrong or corrupted file fails loudly instead of
silently changing every score. The file must hold pytorch-fid's state dict (`pt_inception-2015-12-05-6726825d.pth`;
torch-fidelity's file has the same keys): torchvision's ImageNet `inception_v3` is a different network (its blocks,
its 1000 classes, its input scaling) and is refused. Scores are labelled with the network, the hash and the resize.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from gan_assets.core.config import INCEPTION_NETWORK, INCEPTION_RESIZES, ConfigError
from gan_assets.core.evaluation.devices import CPU, module_device
from gan_assets.core.storage import file_sha256

from .distances import frechet_distance_from_stats, gaussian_stats
from .fid_inception import FID_CLASSES, POOL_FEATURES, FIDInceptionV3

INPUT_SIDE = 299  # Inception-v3's native input
WEIGHTS_HINT = "pytorch-fid's pt_inception-2015-12-05-6726825d.pth (docs/metrics.md)"


@dataclass
class InceptionExtractor:
    model: nn.Module
    sha256: str
    resize: str = "clean"

    @property
    def label(self) -> str:
        return f"{INCEPTION_NETWORK}, weights sha256 {self.sha256}, resize {self.resize}"

    @torch.no_grad()
    def features(self, images: Tensor, batch_size: int = 64) -> Tensor:
        """uint8 images (real data as stored) or float images in [-1, 1] (samples), grey or RGB, any size → (n, 2048)
        float64 pool3 features, computed where the model's weights are and returned on the images' device."""
        self.model.eval()
        device = module_device(self.model)
        return torch.cat([self.model(inception_input(to_uint8(chunk), self.resize).to(device)).to(images.device)
                          for chunk in images.split(batch_size)]).double()


def to_uint8(images: Tensor) -> Tensor:
    """Images in [-1, 1] → uint8 [0, 255], rounded to the nearest level (as a PNG of the sample stores it); uint8
    images unchanged. Real images, made [-1, 1] by `model_input`, come back to the same bytes."""
    if images.dtype == torch.uint8:
        return images
    return images.float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def inception_input(images: Tensor, resize: str) -> Tensor:
    """uint8 (n, 1 or 3, h, w) → the network's (n, 3, 299, 299) float input, on the images' device."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"Inception reads uint8 (n, 1 or 3, h, w) images, got {images.dtype} {tuple(images.shape)}")
    if resize == "clean":
        x = clean_resize(images).to(images.device).sub(128).div(128)  # the TensorFlow graph's own scaling
    elif resize == "legacy_pytorch":
        x = legacy_pytorch_resize(images).mul(2).sub(1)  # pytorch-fid's normalize_input
    else:
        raise ValueError(f"unknown Inception resize {resize!r}; known: {INCEPTION_RESIZES}")
    return x.expand(-1, 3, -1, -1)  # grey: one resized channel, three times


def clean_resize(images: Tensor) -> Tensor:
    """uint8 (n, c, h, w) → float32 (n, c, 299, 299) in [0, 255] on the CPU: clean-fid's "clean" resize
    (`make_resizer("PIL", False, "bicubic", (299, 299))`), PIL's antialiased bicubic on each channel as an 'F' image,
    never quantised. PIL, not torch: torch's bicubic is a different kernel and does not antialias."""
    pixels = images.cpu().numpy()
    out = np.empty((*pixels.shape[:2], INPUT_SIDE, INPUT_SIDE), dtype=np.float32)
    for i, j in np.ndindex(*pixels.shape[:2]):
        channel = Image.fromarray(pixels[i, j].astype(np.float32))  # float32 → PIL's 'F' mode
        out[i, j] = np.asarray(channel.resize((INPUT_SIDE, INPUT_SIDE), resample=Image.BICUBIC)).clip(0, 255)
    return torch.from_numpy(out)


def legacy_pytorch_resize(images: Tensor) -> Tensor:
    """uint8 (n, c, h, w) → float32 (n, c, 299, 299) in [0, 1] on the images' device: pytorch-fid's resize
    (bilinear, align_corners=False, on [0, 1] floats)."""
    x = images.float().div(255)
    return F.interpolate(x, size=(INPUT_SIDE, INPUT_SIDE), mode="bilinear", align_corners=False)


def check_inception_file(weights: str | Path) -> Path:
    """The configured weights path, if it is a file; checked before training too, so a typo fails at once."""
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"evaluation.inception.weights: no file at {path} (Inception weights are never "
                          f"downloaded; put {WEIGHTS_HINT} there)")
    return path


def load_inception(weights: str | Path, expected_sha256: str, resize: str = "clean",
                   device: torch.device = CPU) -> InceptionExtractor:
    """The FID Inception extractor, on `device`, from a local file whose sha256 must equal `expected_sha256`."""
    if resize not in INCEPTION_RESIZES:
        raise ValueError(f"unknown Inception resize {resize!r}; known: {INCEPTION_RESIZES}")
    path = check_inception_file(weights)
    actual = file_sha256(path)
    if actual != expected_sha256.lower():
        raise ValueError(f"evaluation.inception.sha256: {path} has sha256 {actual}, expected {expected_sha256}")
    model = FIDInceptionV3()
    model.load_state_dict(fid_inception_state(path))  # strict: every key, no other
    return InceptionExtractor(model.to(device).eval(), actual, resize)


def fid_inception_state(path: Path) -> dict[str, Tensor]:
    """The state dict in `path`, refused (naming what is wrong) unless it is the FID network's layout."""
    state = _read_state(path)
    expected = FIDInceptionV3().state_dict()
    fc = state.get("fc.weight")
    if fc is None or tuple(fc.shape) != (FID_CLASSES, POOL_FEATURES):
        shape = None if fc is None else tuple(fc.shape)
        raise ConfigError(f"evaluation.inception.weights: {path} is not the FID Inception network (its fc.weight is "
                          f"{shape}, the 2015 graph's is {(FID_CLASSES, POOL_FEATURES)}; torchvision's ImageNet "
                          f"inception_v3 is a different network): use {WEIGHTS_HINT}")
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ConfigError(f"evaluation.inception.weights: {path} is not pytorch-fid's FID Inception state dict: "
                          f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return state


def _read_state(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def inception_fd(extractor: InceptionExtractor, samples: Tensor, real_features: Tensor) -> float:
    """FID of `samples` (images in [-1, 1], or uint8) against precomputed real pool features."""
    return pool_fd(extractor.features(samples), real_features)


def pool_fd(features: Tensor, real_features: Tensor) -> float:
    """FID of pool features (samples embedded chunk by chunk, say) against the real ones."""
    mu1, s1 = gaussian_stats(features)
    mu2, s2 = gaussian_stats(real_features)
    return float(frechet_distance_from_stats(mu1, s1, mu2, s2))
