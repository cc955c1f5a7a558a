"""The evaluator: a small CNN classifier trained on the real train split (an MLP for 2-D points).

Its penultimate features are the space every distance metric is measured in, and its class
probabilities give class coverage and the class histogram. Features from a classifier trained on
the data itself need no download, at the price of not being comparable to published Inception FID.
It trains and embeds on a given device (devices.py's rule) and always leaves on the CPU, where it is stored.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_assets.core.config import EvaluatorConfig
from gan_assets.core.evaluation.devices import CPU, module_device, placed
from gan_assets.core.models.footprint import BYTES_PER_PARAMETER
from gan_assets.core.models.gan.networks import model_input
from gan_assets.core.runtime.memory import check_fits_memory
from gan_assets.core.runtime.threads import adapt_to_load

POINT_HIDDEN = 64  # the point trunk's first layer: mode classification of ring8/grid25 is easy


class Classifier(nn.Module):
    """`kind="images"`: a CNN over (C, H, W) images; `kind="points"`: an MLP over `channels` coordinates
    (`image_size` unused). `init_kwargs` travel with the weights, so either kind is rebuilt from them."""

    def __init__(self, channels: int, image_size: int, num_classes: int, feature_dim: int = 128,
                 kind: str = "images") -> None:
        super().__init__()
        self.init_kwargs = dict(channels=channels, image_size=image_size, num_classes=num_classes,
                                feature_dim=feature_dim, kind=kind)
        self.trunk = _point_trunk(channels, feature_dim) if kind == "points" else _image_trunk(channels, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _image_trunk(channels: int, feature_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(True),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(True),
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(True),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(),  # any input size → 64·4·4
        nn.Linear(64 * 16, feature_dim), nn.ReLU(True),
    )


def _point_trunk(coordinates: int, feature_dim: int) -> nn.Sequential:
    # No batch norm: generated points far off the data must not shift the features of the others.
    return nn.Sequential(nn.Linear(coordinates, POINT_HIDDEN), nn.ReLU(True),
                         nn.Linear(POINT_HIDDEN, feature_dim), nn.ReLU(True))


def _augment(batch: Tensor, rng: torch.Generator) -> Tensor:
    """Random shifts of up to 2 pixels: generated digits are rarely centred like the originals.
    Points are left alone: a shifted point belongs to another place, not the same mode."""
    if batch.ndim != 4:
        return batch
    shift = torch.randint(-2, 3, (2,), generator=rng).tolist()
    return torch.roll(batch, shifts=shift, dims=(2, 3))


def classifier_for(examples: np.ndarray, num_classes: int, feature_dim: int) -> Classifier:
    """A CNN for (N, C, H, W) images, an MLP for (N, D) points."""
    if examples.ndim == 2:
        return Classifier(examples.shape[1], 0, num_classes, feature_dim, kind="points")
    _, channels, size, _ = examples.shape
    return Classifier(channels, size, num_classes, feature_dim)


def check_classifier_fits_memory(shape: tuple[int, ...], num_classes: int, config: EvaluatorConfig) -> None:
    """Refuse an `evaluator.feature_dim` whose network (built on the meta device: no storage) exceeds memory."""
    with torch.device("meta"):
        model = classifier_for(np.empty((0, *shape), dtype=np.uint8), num_classes, config.feature_dim)
    count = sum(p.numel() for p in model.parameters())
    check_fits_memory(count * BYTES_PER_PARAMETER, f"evaluator.feature_dim {config.feature_dim} ({count:,} "
                                                   "parameters)")


def train_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int, config: EvaluatorConfig,
                     seed: int, device: torch.device = CPU) -> Classifier:
    """Train on uint8 images or float32 points (`images` holds either kind) on `device`; the model is returned
    on the CPU."""
    adapt_to_load()  # as many threads as there are CPUs free now
    torch.manual_seed(seed)  # weight init, on the CPU: the same initial weights on every device
    rng = torch.Generator().manual_seed(seed)  # order and shifts, drawn on the CPU for the same reason
    model = classifier_for(images, num_classes, config.feature_dim).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    x, y = model_input(torch.from_numpy(images)).to(device), torch.from_numpy(labels).to(device)
    model.train()
    for _ in range(config.epochs):
        for index in torch.randperm(len(x), generator=rng).split(config.batch_size):
            if len(index) < 2:
                continue  # batch norm needs two examples
            index = index.to(device)
            loss = F.cross_entropy(model(_augment(x[index], rng)), y[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    return model.cpu().eval()


@torch.no_grad()
def embed(model: Classifier, images: Tensor, batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """(features, class probabilities) of float images in [-1, 1] (or 2-D points), in eval mode, in batches:
    computed where the model's weights are, returned on the images' device."""
    model.eval()
    device = module_device(model)
    feats, probs = [], []
    for batch in images.split(batch_size):
        f = model.features(batch.to(device))
        feats.append(f.to(images.device))
        probs.append(torch.softmax(model.head(f), dim=1).to(images.device))
    return torch.cat(feats), torch.cat(probs)


def accuracy(model: Classifier, images: np.ndarray, labels: np.ndarray, device: torch.device = CPU) -> float:
    """Share of `images` whose predicted class is their label, predicted on `device`."""
    _, probs = embed(placed(model, device), model_input(torch.from_numpy(images)))
    return float((probs.argmax(1).numpy() == labels).mean())
