"""The evaluator: a small CNN classifier trained on the real train split.

Its penultimate features are the space every distance metric is measured in, and its class
probabilities give class coverage and the class histogram. Features from a classifier trained on
the data itself need no download, at the price of not being comparable to published Inception FID.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_assets.core.config import EvaluatorConfig
from gan_assets.core.training import to_signed_unit


class Classifier(nn.Module):
    def __init__(self, channels: int, image_size: int, num_classes: int, feature_dim: int = 128) -> None:
        super().__init__()
        self.init_kwargs = dict(channels=channels, image_size=image_size, num_classes=num_classes,
                                feature_dim=feature_dim)
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(True),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(True),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(True),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),  # any input size → 64·4·4
            nn.Linear(64 * 16, feature_dim), nn.ReLU(True),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _augment(batch: Tensor, rng: torch.Generator) -> Tensor:
    """Random shifts of up to 2 pixels: generated digits are rarely centred like the originals."""
    shift = torch.randint(-2, 3, (2,), generator=rng).tolist()
    return torch.roll(batch, shifts=shift, dims=(2, 3))


def train_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int, config: EvaluatorConfig,
                     seed: int) -> Classifier:
    torch.manual_seed(seed)  # weight init
    rng = torch.Generator().manual_seed(seed)
    _, channels, size, _ = images.shape
    model = Classifier(channels, size, num_classes, config.feature_dim)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    x, y = to_signed_unit(torch.from_numpy(images)), torch.from_numpy(labels)
    model.train()
    for _ in range(config.epochs):
        for index in torch.randperm(len(x), generator=rng).split(config.batch_size):
            if len(index) < 2:
                continue  # batch norm needs two examples
            loss = F.cross_entropy(model(_augment(x[index], rng)), y[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    return model.eval()


@torch.no_grad()
def embed(model: Classifier, images: Tensor, batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """(features, class probabilities) of float images in [-1, 1], in eval mode, in batches."""
    model.eval()
    feats, probs = [], []
    for batch in images.split(batch_size):
        f = model.features(batch)
        feats.append(f)
        probs.append(torch.softmax(model.head(f), dim=1))
    return torch.cat(feats), torch.cat(probs)


def accuracy(model: Classifier, images: np.ndarray, labels: np.ndarray) -> float:
    _, probs = embed(model, to_signed_unit(torch.from_numpy(images)))
    return float((probs.argmax(1).numpy() == labels).mean())
