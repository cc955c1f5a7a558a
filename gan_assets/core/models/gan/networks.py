"""DCGAN generator and discriminator (Radford et al. 2015; tutorial §3.3), sized by the image.

The layout rules the tutorial states, which tests check by introspection:
- all-convolutional: G upsamples with stride-2 transposed convs, D downsamples with stride-2 convs,
  no pooling anywhere (extra depth adds stride-1 3×3 layers at the 4×4 stage);
- normalisation in every hidden layer except G's output layer and D's input layer;
- ReLU in G with a Tanh output, LeakyReLU(0.2) in D, and D returns logits (no Sigmoid), because the
  losses, the maximum-likelihood game above all, are written on logits.

Training with labels (tutorial §4.1): a conditional G joins a learned class embedding to z; a
conditional D is a projection discriminator (Miyato & Koyama 2018: the logit gains ⟨embed(y), φ(x)⟩);
an auxiliary classifier is the AC-GAN form (Odena et al. 2017): a second head on D's features
predicting the class.

2-D mixtures (ring8, grid25) use PacGAN-style MLPs (`MLPGenerator`, `MLPDiscriminator`) under the same
rules: a norm in every hidden layer except G's output and D's input, D returns logits; G's output is
linear, not Tanh, because coordinates are unbounded.

Reference and virtual BN (tutorial §4.3) run a fixed reference batch through the network together
with the minibatch; each network holds its reference input as a buffer, set once and never replaced.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor, nn

from gan_assets.core.models.gan.norms import make_norm, set_reference_rows, uses_reference

if TYPE_CHECKING:
    from gan_assets.core.config import ModelConfig

# MNIST's 28×28 is made at 32×32: D pads its input with background (−1), G crops its output.
PADDED_SIZES = {28: 32}


def num_resolution_steps(image_size: int) -> int:
    """Stride-2 layers between 4×4 and the image: 32 → 3 (4→8→16→32); 28 is built as 32."""
    image_size = PADDED_SIZES.get(image_size, image_size)
    steps = int(math.log2(max(image_size // 4, 1)))
    if 4 * 2**steps != image_size or steps < 1:
        raise ValueError(f"image_size {image_size} is not 4·2^k with k ≥ 1")
    return steps


class _WithReference(nn.Module):
    """Shared plumbing: the fixed reference input and running it ahead of the minibatch."""

    def __init__(self, norm: str) -> None:
        super().__init__()
        self.norm = norm
        self.register_buffer("reference", None)
        self.register_buffer("reference_labels", None)

    def set_reference(self, reference: Tensor, labels: Tensor | None = None) -> None:
        if self.reference is not None:
            raise RuntimeError("the reference batch is chosen once and never replaced")
        self.reference = reference.detach().clone()
        if labels is not None:
            self.reference_labels = labels.detach().clone().long()

    def _run(self, body: nn.Module, x: Tensor) -> Tensor:
        if not uses_reference(self.norm):
            return body(x)
        if self.reference is None:
            raise RuntimeError(f"norm {self.norm!r} needs a reference batch: call set_reference first")
        reference = self._reference_input(x)
        n_ref = len(reference)
        set_reference_rows(body, n_ref)
        out = body(torch.cat([reference, x]))
        return out[n_ref:]

    def _reference_input(self, x: Tensor) -> Tensor:
        return self.reference.to(x.dtype)


def _extra_layers(conv: type[nn.Module], channels: int, depth: int, norm: str, act: nn.Module) -> list[nn.Module]:
    """`depth` stride-1 3×3 layers that keep the shape: capacity without breaking the layout rules."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [conv(channels, channels, 3, 1, 1, bias=norm == "none"), make_norm(norm, channels), act]
    return layers


class _CodeFromLabels(_WithReference):
    """A generator's input code: z, joined with a class embedding when the generator is conditional."""

    def __init__(self, norm: str, z_dim: int, num_classes: int, label_dim: int) -> None:
        super().__init__(norm)
        self.z_dim = z_dim
        self.num_classes = num_classes  # > 0: conditional, G(z, y)
        self.embed = nn.Embedding(num_classes, label_dim) if num_classes else None

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def _code(self, z: Tensor, y: Tensor | None) -> Tensor:
        if not self.conditional:
            return z
        if y is None:
            raise ValueError("a conditional generator needs class labels y")
        return torch.cat([z, self.embed(y).to(z.dtype)], dim=1)

    def _reference_input(self, x: Tensor) -> Tensor:
        return self._code(self.reference.to(x.dtype), self.reference_labels)


class Generator(_CodeFromLabels):
    def __init__(self, z_dim: int, width: int, channels: int, image_size: int, norm: str = "batch",
                 depth: int = 0, num_classes: int = 0, label_dim: int = 0) -> None:
        super().__init__(norm, z_dim, num_classes, label_dim)
        self.image_size, self.channels = image_size, channels
        steps = num_resolution_steps(image_size)
        hidden, bias = width * 2 ** (steps - 1), norm == "none"  # a norm's shift makes a conv bias redundant
        # state size. (z_dim + label_dim) x 1 x 1 -> hidden x 4 x 4
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim + (label_dim if num_classes else 0), hidden, 4, 1, 0,
                                                      bias=bias), make_norm(norm, hidden), nn.ReLU(True)]
        layers += _extra_layers(nn.ConvTranspose2d, hidden, depth, norm, nn.ReLU(True))
        for _ in range(steps - 1):  # each block doubles the side and halves the channels
            layers += [nn.ConvTranspose2d(hidden, hidden // 2, 4, 2, 1, bias=bias),
                       make_norm(norm, hidden // 2), nn.ReLU(True)]
            hidden //= 2
        # state size. width x size/2 x size/2 -> channels x size x size; no norm on the output layer
        layers += [nn.ConvTranspose2d(hidden, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def _reference_input(self, x: Tensor) -> Tensor:
        return self._code(self.reference.to(x.dtype), self.reference_labels)[:, :, None, None]

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        assert z.ndim == 2 and z.shape[1] == self.z_dim, z.shape
        out = self._run(self.body, self._code(z, y)[:, :, None, None])
        margin = (out.shape[-1] - self.image_size) // 2  # 32 → 28: drop the padding D never sees
        return out[..., margin:margin + self.image_size, margin:margin + self.image_size] if margin else out


class _LabelAwareDiscriminator(_WithReference):
    """What both discriminators share: φ(x) from the body, the logit head, the projection term
    ⟨embed(y), Σφ(x)⟩ of a conditional D, and the AC-GAN class head."""

    input_ndim = 4
    pack = 1  # PacGAN: consecutive samples D judges as one (`build_discriminator` sets it)

    def _set_heads(self, head: nn.Module, class_head: nn.Module | None, hidden: int, num_classes: int,
                   conditional: bool) -> None:
        self.head, self.class_head = head, class_head
        self.embed = nn.Embedding(num_classes, hidden) if conditional else None  # projection
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)  # start as an unconditional D

    def features(self, x: Tensor) -> Tensor:
        assert x.ndim == self.input_ndim, x.shape
        return self._run(self.body, self._packed(x))

    def _packed(self, x: Tensor) -> Tensor:
        """PacGAN's packing: each `pack` consecutive samples joined along channels (features for points), so D sees
        (N / pack, pack·C, H, W) and returns one logit per pack (Lin et al. 2018)."""
        return x if self.pack == 1 else x.reshape(x.shape[0] // self.pack, self.pack * x.shape[1], *x.shape[2:])

    def _reference_input(self, x: Tensor) -> Tensor:
        return self._packed(self.reference.to(x.dtype))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.logits(self.features(x), y)

    def logits(self, phi: Tensor, y: Tensor | None = None) -> Tensor:
        out = self.head(phi).flatten()
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional discriminator needs class labels y")
            # in fp32 on every device: CUDA's autocast promotes `sum` to fp32 and CPU's does not, so leaving the
            # choice to autocast would make the same D compute a different logit on each
            pooled = phi.float().flatten(2).sum(dim=2) if phi.ndim > 2 else phi.float()  # sum φ over space, if any
            out = out.float() + (self.embed(y).float() * pooled).sum(dim=1)
        return out

    def class_logits(self, phi: Tensor) -> Tensor:
        return self.class_head(phi).flatten(1)


class Discriminator(_LabelAwareDiscriminator):
    def __init__(self, width: int, channels: int, image_size: int, norm: str = "batch", depth: int = 0,
                 num_classes: int = 0, conditional: bool = False, auxiliary_classifier: bool = False) -> None:
        super().__init__(norm)
        steps, bias = num_resolution_steps(image_size), norm == "none"
        # state size. channels x size x size -> width x size/2 x size/2; no norm on the input layer
        pad = (PADDED_SIZES.get(image_size, image_size) - image_size) // 2
        layers: list[nn.Module] = [nn.ConstantPad2d(pad, -1.0)] if pad else []  # 28 → 32, background −1
        layers += [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        hidden = width
        for _ in range(steps - 1):  # each block halves the side and doubles the channels
            layers += [nn.Conv2d(hidden, hidden * 2, 4, 2, 1, bias=bias),
                       make_norm(norm, hidden * 2), nn.LeakyReLU(0.2, True)]
            hidden *= 2
        layers += _extra_layers(nn.Conv2d, hidden, depth, norm, nn.LeakyReLU(0.2, True))
        self.body = nn.Sequential(*layers)  # φ(x): hidden x 4 x 4
        self._set_heads(nn.Conv2d(hidden, 1, 4, 1, 0, bias=False),  # one logit per image
                        nn.Conv2d(hidden, num_classes, 4, 1, 0) if auxiliary_classifier else None,
                        hidden, num_classes, conditional)


# Hidden layers of the 2-D MLPs at model depth 0; g_depth / d_depth add layers to this, as they add
# stride-1 layers to DCGAN, so the image defaults still give a working MLP.
MLP_BASE_DEPTH = 2


def _mlp_hidden(fan_in: int, width: int, layers: int, norm: str, act: nn.Module) -> list[nn.Module]:
    """`layers` blocks of Linear → norm → act; a norm's shift makes the linear bias redundant."""
    blocks: list[nn.Module] = []
    for _ in range(layers):
        blocks += [nn.Linear(fan_in, width, bias=norm == "none"), make_norm(norm, width), act]
        fan_in = width
    return blocks


class MLPGenerator(_CodeFromLabels):
    """PacGAN's 2-D generator: z (and a class embedding) → ReLU MLP → `out_dim` coordinates.

    The output layer is linear with no norm and no Tanh: mixture coordinates are unbounded (grid25 reaches ±4).
    """

    def __init__(self, z_dim: int, width: int, out_dim: int = 2, norm: str = "batch", depth: int = 0,
                 num_classes: int = 0, label_dim: int = 0) -> None:
        super().__init__(norm, z_dim, num_classes, label_dim)
        self.out_dim = out_dim
        fan_in = z_dim + (label_dim if num_classes else 0)
        # state size. (z_dim + label_dim) -> width -> … -> width -> out_dim
        layers = _mlp_hidden(fan_in, width, MLP_BASE_DEPTH + depth, norm, nn.ReLU(True))
        self.body = nn.Sequential(*layers, nn.Linear(width, out_dim))

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        assert z.ndim == 2 and z.shape[1] == self.z_dim, z.shape
        return self._run(self.body, self._code(z, y))


class MLPDiscriminator(_LabelAwareDiscriminator):
    """PacGAN's 2-D discriminator: LeakyReLU(0.2) MLP, no norm on the input layer, one logit per point.

    Conditional (projection) and auxiliary-classifier options work on φ(x), the last hidden layer.
    """

    input_ndim = 2

    def __init__(self, width: int, in_dim: int = 2, norm: str = "batch", depth: int = 0, num_classes: int = 0,
                 conditional: bool = False, auxiliary_classifier: bool = False) -> None:
        super().__init__(norm)
        # state size. in_dim -> width (no norm: D's input layer) -> … -> width
        layers: list[nn.Module] = [nn.Linear(in_dim, width), nn.LeakyReLU(0.2, True)]
        layers += _mlp_hidden(width, width, MLP_BASE_DEPTH - 1 + depth, norm, nn.LeakyReLU(0.2, True))
        self.body = nn.Sequential(*layers)  # φ(x): (N, width)
        self._set_heads(nn.Linear(width, 1),  # logits, no Sigmoid
                        nn.Linear(width, num_classes) if auxiliary_classifier else None,
                        width, num_classes, conditional)


def spectral_normalise(module: nn.Module) -> nn.Module:
    """Every conv, linear and embedding weight of `module` divided by its largest singular value, estimated by one
    power iteration per forward (Miyato et al. 2018, SN-GAN): D's Lipschitz constant stays near 1. Beyond the
    tutorial; for D only, as in the paper."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            nn.utils.parametrizations.spectral_norm(m)
    return module


def _weight(m: nn.Module) -> Tensor:
    """The stored weight: under spectral norm, the unnormalised original the optimiser moves."""
    return m.parametrizations.weight.original if nn.utils.parametrize.is_parametrized(m, "weight") else m.weight


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN paper: conv weights ~ N(0, 0.02); norm scales ~ N(1, 0.02), shifts 0 (embeddings keep theirs)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(_weight(m), 0.0, 0.02)
        elif isinstance(getattr(m, "weight", None), Tensor) and m.weight.ndim == 1:  # not spectral norm's containers
            nn.init.normal_(m.weight, 1.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def to_signed_unit(images: Tensor) -> Tensor:
    """uint8 [0, 255] → float [-1, 1], the range of G's Tanh."""
    return images.float().div_(127.5).sub_(1.0)


def model_input(examples: Tensor) -> Tensor:
    """What D sees of real examples: uint8 images in G's Tanh range; float 2-D points as they are
    (G's output is linear there, so coordinates keep their own scale)."""
    return to_signed_unit(examples) if examples.dtype == torch.uint8 else examples


def build_generator(model: ModelConfig, shape: Sequence[int], num_classes: int) -> Generator | MLPGenerator:
    """The data kind picks the network: (C, H, W) images → DCGAN, (2,) points → PacGAN's MLP."""
    common = dict(z_dim=model.z_dim, width=model.g_width, norm=model.norm, depth=model.g_depth,
                  num_classes=num_classes if model.conditional else 0, label_dim=model.label_dim)
    if len(shape) == 1:
        return MLPGenerator(out_dim=shape[0], **common)
    channels, image_size, _ = shape
    return Generator(channels=channels, image_size=image_size, **common)


def build_discriminator(model: ModelConfig, shape: Sequence[int], num_classes: int) -> Discriminator | MLPDiscriminator:
    """D for the data's shape; with `model.pack` m it reads m samples at once, with `model.spectral_norm` its
    weights are spectrally normalised."""
    common = dict(width=model.d_width, norm=model.norm, depth=model.d_depth, num_classes=num_classes,
                  conditional=model.conditional, auxiliary_classifier=model.auxiliary_classifier)
    if len(shape) == 1:
        d = MLPDiscriminator(in_dim=shape[0] * model.pack, **common)
    else:
        channels, image_size, _ = shape
        d = Discriminator(channels=channels * model.pack, image_size=image_size, **common)
    d.pack = model.pack
    return spectral_normalise(d) if model.spectral_norm else d
