"""Optional Inception FID, from a local weights file only.

Published FIDs are Fréchet distances in Inception-v3's 2048-d pool features. Weights cannot be
downloaded here (and many users run offline), so the extractor is built only from a file the user
names, and only after its sha256 matches the one they state: a wrong or corrupted file fails
loudly instead of silently changing every score. The architecture is torchvision's `inception_v3`;
its state dict (with or without the auxiliary head) as safetensors or a torch file (read with
`weights_only=True`). Scores from it are labelled with the extractor and the file's hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_assets.core.config import ConfigError
from gan_assets.core.evaluation.devices import CPU, module_device
from gan_assets.core.storage import file_sha256

from .distances import frechet_distance_from_stats, gaussian_stats

INPUT_SIDE = 299  # Inception-v3's native input
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class InceptionExtractor:
    model: nn.Module
    sha256: str

    @property
    def label(self) -> str:
        return f"torchvision inception_v3 pool3 (2048-d), weights sha256 {self.sha256}"

    @torch.no_grad()
    def features(self, images: Tensor, batch_size: int = 64) -> Tensor:
        """Images in [-1, 1], grey or RGB, any size → (n, 2048) pool features, computed where the model's weights
        are and returned on the images' device."""
        self.model.eval()
        device = module_device(self.model)
        return torch.cat([self.model(_to_inception_input(chunk.to(device))).to(images.device)
                          for chunk in images.split(batch_size)]).double()


def _to_inception_input(images: Tensor) -> Tensor:
    x = images.float().add(1).div(2)  # [-1, 1] → [0, 1]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(INPUT_SIDE, INPUT_SIDE), mode="bilinear", align_corners=False)
    mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    return (x - mean) / std


def check_inception_file(weights: str | Path) -> Path:
    """The configured weights path, if it is a file; checked before training too, so a typo fails at once."""
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"evaluation.inception.weights: no file at {path} (Inception weights are never "
                          "downloaded; put torchvision's inception_v3 state dict there)")
    return path


def load_inception(weights: str | Path, expected_sha256: str, device: torch.device = CPU) -> InceptionExtractor:
    """The extractor, on `device`, from a local file whose sha256 must equal `expected_sha256`."""
    path = check_inception_file(weights)
    actual = file_sha256(path)
    if actual != expected_sha256.lower():
        raise ValueError(f"evaluation.inception.sha256: {path} has sha256 {actual}, expected {expected_sha256}")
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=False, init_weights=False)
    model.fc = nn.Identity()  # pool3 features, not ImageNet logits
    state = _read_state(path)
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith(("AuxLogits.", "fc."))})
    return InceptionExtractor(model.to(device).eval(), actual)


def _read_state(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def inception_fd(extractor: InceptionExtractor, samples: Tensor, real_features: Tensor) -> float:
    """FID of `samples` (images in [-1, 1]) against precomputed real pool features."""
    return pool_fd(extractor.features(samples), real_features)


def pool_fd(features: Tensor, real_features: Tensor) -> float:
    """FID of pool features (samples embedded chunk by chunk, say) against the real ones."""
    mu1, s1 = gaussian_stats(features)
    mu2, s2 = gaussian_stats(real_features)
    return float(frechet_distance_from_stats(mu1, s1, mu2, s2))
