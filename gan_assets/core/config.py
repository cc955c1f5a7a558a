"""Every hyperparameter of an experiment, defined once, with the tutorial's value as its default.

An experiment YAML only overrides these defaults. Unknown keys, wrong types and impossible values
fail here, before any work, with the dotted name of the offending field (pydantic's error locations).
Cross-field rules (batch larger than the dataset, an image size the networks cannot make) live in
validators on the model that sees both fields.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

# The names each registry implements. The schema is the bottom of the house (it imports no other project module),
# so the registries import these names and tests/core/test_config.py ties each list to its registry's keys.
GENERATOR_LOSSES = ("minimax", "non_saturating", "maximum_likelihood")  # models/gan/losses.py, §3.2.3
GAMES = (*GENERATOR_LOSSES, "hinge")  # training.generator_loss: the tutorial's three, and the hinge game beyond it
AUGMENTATIONS = ("translation", "cutout", "color")  # training/augment.py: DiffAugment's policies (Zhao et al. 2020)
NORM_KINDS = ("batch", "reference", "virtual", "none")  # models/gan/norms.py, §3.3 / §4.3
UPDATE_RULES = ("alternating", "simultaneous")  # training/loop.py STEP_FUNCTIONS, §3.1
SAMPLING_MODES = ("eval", "train", "reference")  # evaluation/sampling.py
# Every metric of evaluation/metrics and the columns it fills, in order (one metric may fill several).
METRIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "fd": ("fd",),
    "kid": ("kid", "kid_std"),
    "precision_recall": ("precision", "recall"),
    "class_coverage": ("class_coverage",),
    "class_kl": ("class_kl",),
    "confidence": ("confidence",),
    "classifier_score": ("classifier_score",),
    "nn_ratio": ("nn_ratio",),
    "modes": ("modes", "hq_fraction", "reverse_kl"),
}
DEFAULT_IMAGE_METRICS = (
    "fd", "kid", "precision_recall", "class_coverage", "class_kl", "confidence", "classifier_score", "nn_ratio",
)
DEFAULT_POINT_METRICS = ("modes",)  # 2-D mixtures: always scored there (PacGAN's protocol), nowhere else
PIXEL_METRICS = ("nn_ratio",)  # measured in pixels: 2-D points have none, so they are skipped there
# Registry metrics also scored in the FID Inception network's pool3 features when evaluation.inception is set, into
# columns `<column>_inception` (fd always; kid and precision_recall when evaluation.metrics lists them).
INCEPTION_METRICS = ("fd", "kid", "precision_recall")
INCEPTION_NETWORK = "FID Inception-v3 (the 2015 TensorFlow graph, pytorch-fid's layout), pool3 2048-d"
# How images reach Inception's 299x299 (metrics/inception.py): clean-fid's "clean" (PIL bicubic on float pixels, input
# scaled as the TensorFlow graph does) and its "legacy_pytorch" (pytorch-fid's bilinear F.interpolate and scaling).
INCEPTION_RESIZES = ("clean", "legacy_pytorch")

GeneratorLoss = Literal[GAMES]  # type: ignore[valid-type]
Augmentation = Literal[AUGMENTATIONS]  # type: ignore[valid-type]
NormKind = Literal[NORM_KINDS]  # type: ignore[valid-type]
UpdateRule = Literal[UPDATE_RULES]  # type: ignore[valid-type]
SamplingMode = Literal[SAMPLING_MODES]  # type: ignore[valid-type]
InceptionResize = Literal[INCEPTION_RESIZES]  # type: ignore[valid-type]
# Dataset sources: `sources.LOADERS` imports this module, so a test ties the two (tests/core/test_config.py).
DatasetSource = Literal["digits", "mnist", "fashion_mnist", "cifar10", "image_folder", "ring8", "grid25",
                        "stacked_mnist"]

# The error type of a key that moved out of the experiment (training.device): its message names the key.
MOVED_SETTING = "moved_setting"

# numpy and torch both take seeds in [0, 2**32) everywhere the experiment's seed (plus an offset) goes.
MAX_SEED = 2**32 - 1
# Ceilings on network sizes, far above the tutorial's (widths 32-1024, a few layers): a value beyond them is a typo
# that would spend minutes building networks (or overflow torch's size arithmetic) before any memory check.
MAX_WIDTH = 16_384
MAX_LAYERS = 64
MAX_CHECKPOINTS = 1000  # each is written to disk and scored: more is hours of scoring and gigabytes
# k of the k-NN manifolds of improved precision/recall (Kynkäänniemi et al.): every set it compares needs k+1 points.
PRECISION_RECALL_K = 3

# Images per class in sklearn's bundled digits is ~180; the whole set is 1,797 images.
DIGITS_SIZE = 1797
POINT_SOURCES = ("ring8", "grid25")  # 2-D mixtures: MLP networks, mode metrics, scatter galleries
# The generative model (tutorial §2's taxonomy): the GAN, or one of the maximum-likelihood families beside it.
ModelFamily = Literal["gan", "vae", "fvbn", "real_nvp"]
LIKELIHOOD_FAMILIES = ("vae", "fvbn", "real_nvp")  # each has its own section under `model`


def check_path_text(text: str) -> str:
    """A path the operating system can take: no NUL byte, encodable in the filesystem's encoding."""
    if "\0" in text:
        raise ValueError("a path cannot contain a NUL byte")
    try:
        os.fsencode(text)
    except UnicodeEncodeError as err:
        raise ValueError(f"a path cannot hold {text[err.start:err.end]!r}: not encodable as a file name") from None
    return text


class Section(BaseModel):
    """Strict base: an unknown key, NaN or ±inf, or yes/no for a number is an error, and values are re-validated
    on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_yes_no(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads `true` as 1: `checkpoint_every: true` (or YAML 1.1's `on`) would checkpoint every step.
        if isinstance(value, bool) and cls.model_fields[info.field_name].annotation in (int, float):
            raise ValueError(f"{value!r} is a yes/no value, not a number")
        if isinstance(value, (set, frozenset)):  # YAML's !!set: its order, and so the section's hash, varies by run
            raise ValueError("a set has no order: write a list")
        return value


class DatasetConfig(Section):
    """Which data, at which size. File sources read `root` and never fetch unless `download` is set;
    ring8/grid25 ignore image_size and channels (their examples are 2-D points)."""

    source: DatasetSource = "digits"  # digits: sklearn's bundled 8×8 digits, works offline
    image_size: int = Field(32, gt=0)  # resized side: 4·2^k (8, 16, 32, 64) or MNIST's own 28
    channels: int = Field(1, ge=1, le=3)  # 1 = grey, 3 = RGB
    root: str = "data/raw"  # where file-based sources look for their files
    download: bool = False  # never fetch unless asked: tests and CI are offline
    held_out_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # per class, for the real floor
    splits: list[Literal["train", "test"]] = ["train", "test"]  # torchvision sources: files to read
    labels: bool = True  # image_folder: one sub-folder per class; false = one unlabelled class
    skip_bad_files: bool = False  # image_folder: false = fail naming unreadable files, true = skip them
    num_samples: int = Field(25_600, gt=1)  # ring8, grid25, stacked_mnist: examples drawn with the seed

    @field_validator("root")
    @classmethod
    def _a_path(cls, root: str) -> str:
        return check_path_text(root)

    @field_validator("image_size")
    @classmethod
    def _dcgan_can_make(cls, size: int) -> int:
        # G starts at 4×4 and doubles with every transposed conv; D mirrors it. 28 is stored as is
        # (MNIST's native side, no resampling) and the networks pad it to 32.
        if size > 64:
            raise ValueError(f"image_size {size} is larger than the supported 64")
        if size not in (8, 16, 28, 32, 64):
            raise ValueError(f"image_size {size} cannot be made by the DCGAN stack: use 8, 16, 28, 32 or 64")
        return size

    @field_validator("channels")
    @classmethod
    def _grey_or_rgb(cls, channels: int) -> int:
        if channels not in (1, 3):
            raise ValueError(f"channels {channels} is neither 1 (grey) nor 3 (RGB)")
        return channels

    @field_validator("splits")
    @classmethod
    def _some_distinct_splits(cls, splits: list[str]) -> list[str]:
        if not splits or len(set(splits)) != len(splits):
            raise ValueError(f"splits {splits} must name train and/or test, each once")
        return splits

    @model_validator(mode="after")
    def _stacked_is_rgb(self) -> DatasetConfig:
        # Stacked MNIST's 1,000 modes are its three channels: grey would merge them.
        if self.source == "stacked_mnist" and self.channels != 3:
            raise ValueError(f"channels must be 3 for stacked_mnist (three digits, one per channel), got {self.channels}")
        return self


class ReferenceBatchConfig(Section):
    size: int = Field(64, gt=1)  # fixed real batch for D's reference BN and fixed z for G


class VaeConfig(Section):
    """A convolutional VAE (Kingma & Welling 2014): Gaussian encoder, discretised-logistic decoder over 8-bit pixels."""

    latent_dim: int = Field(16, gt=0, le=MAX_WIDTH)  # size of the Gaussian code
    width: int = Field(32, gt=0, le=MAX_WIDTH)  # channels of the encoder's first conv (doubling inward); the decoder mirrors it
    lr: float = Field(1e-3, gt=0.0)  # Adam, betas (0.9, 0.999): the usual values for likelihood models


class FvbnConfig(Section):
    """A PixelCNN (van den Oord et al. 2016): masked convolutions with gated units, a 256-way softmax per pixel."""

    width: int = Field(16, gt=0, le=MAX_WIDTH)  # channels of every hidden masked conv
    layers: int = Field(3, ge=1, le=MAX_LAYERS)  # gated residual 3×3 mask-B layers after the 5×5 mask-A input layer
    lr: float = Field(1e-3, gt=0.0)


class RealNvpConfig(Section):
    """Real NVP (Dinh et al. 2017): affine couplings with checkerboard, then (after a squeeze) channel masks."""

    width: int = Field(32, gt=0, le=MAX_WIDTH)  # channels of each coupling's convolutional network
    blocks: int = Field(1, ge=0, le=MAX_LAYERS)  # residual blocks in each coupling's network
    couplings: int = Field(3, ge=1, le=MAX_LAYERS)  # per mask kind: checkerboard couplings, squeeze, as many channel couplings
    lr: float = Field(1e-3, gt=0.0)


# Model fields only the GAN reads: another family refuses a value other than the default, naming the field.
GAN_MODEL_FIELDS = ("z_dim", "g_width", "d_width", "g_depth", "d_depth", "norm", "conditional",
                    "auxiliary_classifier", "label_dim", "spectral_norm", "pack")
GAN_TRAINING_FIELDS = ("generator_loss", "label_smoothing", "fake_label", "d_steps", "update", "optimizer",
                       "classifier_weight", "lr_g", "lr_d", "beta1", "beta2", "ema_decay", "augment", "ada_target",
                       "r1_gamma", "r1_every")
# Options beyond the tutorial: a section dumps (and so hashes, in run keys and observed versions) without them while
# they keep their defaults, so adding one never makes an existing experiment stale.
BEYOND_TUTORIAL = {"model": ("spectral_norm", "pack"),
                   "training": ("ema_decay", "augment", "ada_target", "r1_gamma", "r1_every"),
                   "evaluation": ("generator",)}


def _without_default_options(section: BaseModel, payload: dict[str, Any], name: str) -> dict[str, Any]:
    fields = type(section).model_fields
    return {k: v for k, v in payload.items()
            if not (k in BEYOND_TUTORIAL[name] and getattr(section, k) == fields[k].default)}


class ModelConfig(Section):
    # gan: the DCGAN below (every field but the family sections); vae / fvbn / real_nvp: the section of that name.
    family: ModelFamily = "gan"
    z_dim: int = Field(100, gt=0, le=MAX_WIDTH)  # DCGAN's prior dimension
    # 2-D mixtures (ring8, grid25) build MLPs from the same four fields: width = units per hidden
    # layer (PacGAN uses a few hundred: set it in the experiment), depth = hidden layers beyond 2.
    g_width: int = Field(32, gt=0, le=MAX_WIDTH)  # channels of G's last hidden layer (doubles inward)
    d_width: int = Field(32, gt=0, le=MAX_WIDTH)  # channels of D's first layer (doubles inward)
    g_depth: int = Field(0, ge=0, le=MAX_LAYERS)  # extra stride-1 layers in G at 4×4 (§4.4: D is usually the bigger one)
    d_depth: int = Field(0, ge=0, le=MAX_LAYERS)  # extra stride-1 layers in D at 4×4
    norm: NormKind = "batch"  # §3.3 / §4.3, in both networks
    conditional: bool = False  # §4.1: G and D both see the class (G: embedding joined to z; D: projection)
    auxiliary_classifier: bool = False  # §4.1: D also predicts the class (the AC-GAN form)
    label_dim: int = Field(16, gt=0, le=MAX_WIDTH)  # size of G's class embedding when conditional
    # Beyond the tutorial (docs/quality.md measures each):
    spectral_norm: bool = False  # D's weights divided by their largest singular value (Miyato et al. 2018)
    pack: int = Field(1, ge=1, le=16)  # PacGAN (Lin et al. 2018): D judges `pack` samples together; 1: one at a time
    vae: VaeConfig = VaeConfig()
    fvbn: FvbnConfig = FvbnConfig()
    real_nvp: RealNvpConfig = RealNvpConfig()

    @model_validator(mode="after")
    def _fields_of_the_family(self) -> ModelConfig:
        # A value set for a family that is not trained would be silently ignored: refuse it, naming the field.
        for name in LIKELIHOOD_FAMILIES:
            if name != self.family and getattr(self, name) != type(getattr(self, name))():
                raise ValueError(f"model.{name} is read only when model.family is {name!r} "
                                 f"(model.family is {self.family!r})")
        if self.family != "gan":
            for name in GAN_MODEL_FIELDS:
                if getattr(self, name) != ModelConfig.model_fields[name].default:
                    raise ValueError(f"model.{name} applies only to model.family 'gan' "
                                     f"(model.family is {self.family!r}): set model.{self.family} instead")
        return self

    @model_serializer(mode="wrap")
    def _without_unused_families(self, handler: Any) -> dict[str, Any]:
        # Only the trained family's section is part of the config: a GAN's model section dumps (and so hashes,
        # in its run key and its observed version) exactly as before families existed.
        payload = handler(self)
        unused = [name for name in LIKELIHOOD_FAMILIES if name != self.family]
        payload = {k: v for k, v in payload.items() if k not in unused and not (k == "family" and v == "gan")}
        return _without_default_options(self, payload, "model")


class TrainingConfig(Section):
    steps: int = Field(3000, gt=0)  # generator updates
    generator_loss: GeneratorLoss = "non_saturating"  # §3.2.3
    label_smoothing: float = Field(0.1, ge=0.0, lt=0.5)  # α: D's real target is 1 − α (§4.2)
    fake_label: float = Field(0.0, ge=0.0, lt=0.5)  # β: D's fake target; > 0 is harmful (§4.2)
    d_steps: int = Field(1, gt=0)  # D updates per G update; the tutorial finds 1 best
    update: UpdateRule = "alternating"
    optimizer: Literal["adam", "rmsprop"] = "adam"  # both use lr_g / lr_d; rmsprop ignores beta1/beta2
    classifier_weight: float = Field(1.0, ge=0.0)  # weight of the auxiliary classifier's cross-entropy
    batch_size: int = Field(64, gt=1)  # BN needs at least two examples
    lr_g: float = Field(2e-4, gt=0.0)  # DCGAN paper: Adam lr 2e-4
    lr_d: float = Field(2e-4, gt=0.0)
    beta1: float = Field(0.5, ge=0.0, lt=1.0)  # DCGAN paper: β1 0.5 (0.9 oscillates)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    checkpoint_every: int = Field(500, gt=0)  # steps between checkpoints (and the last step)
    log_every: int = Field(100, gt=0)  # steps between progress reports; the only host syncs
    # auto = bf16 autocast (fp32 costs and weights) where the device has bf16 units (CUDA, AVX-512 BF16/AMX CPUs)
    # and the players are convolutional; fp32 elsewhere. `make bench` measures both; FD is within seed noise.
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    # Beyond the tutorial, each off by default (docs/quality.md measures each):
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)  # G_ema, a moving average of G's weights (Karras et al. 2018); 0: off
    augment: list[Augmentation] = []  # DiffAugment (Zhao et al. 2020) on every image D sees, real and fake, both steps
    ada_target: float = Field(0.0, ge=0.0, lt=1.0)  # ADA (Karras et al. 2020): augment with a probability tuned so
    #   E[sign D(real)] stays at this target (0.6 in the paper); 0: always augment
    r1_gamma: float = Field(0.0, ge=0.0)  # R1 penalty γ/2·E‖∇D(x_real)‖² (Mescheder et al. 2018); 0: off
    r1_every: int = Field(16, gt=0, le=1000)  # lazy R1 (Karras et al. 2020, StyleGAN2): every k D steps, weighted k

    @model_serializer(mode="wrap")
    def _without_default_beyond(self, handler: Any) -> dict[str, Any]:
        return _without_default_options(self, handler(self), "training")

    @model_validator(mode="after")
    def _options_combine(self) -> TrainingConfig:
        if self.generator_loss == "hinge" and (self.label_smoothing or self.fake_label):
            raise ValueError(f"training.generator_loss 'hinge' has margins, not targets: training.label_smoothing "
                             f"{self.label_smoothing} and training.fake_label {self.fake_label} must be 0 with it")
        if self.ada_target and not self.augment:
            raise ValueError("training.ada_target tunes how often training.augment applies: list augmentations in "
                             "training.augment (e.g. [translation, cutout, color]) or set ada_target 0")
        if len(set(self.augment)) != len(self.augment):
            raise ValueError(f"training.augment lists an augmentation twice: {self.augment}")
        return self

    @model_validator(mode="after")
    def _checkpoints_are_countable(self) -> TrainingConfig:
        count = -(-self.steps // self.checkpoint_every)
        if count > MAX_CHECKPOINTS:
            raise ValueError(f"training.steps {self.steps} with checkpoint_every {self.checkpoint_every} writes {count:,} "
                             f"checkpoints, each stored and scored; at most {MAX_CHECKPOINTS}: raise checkpoint_every")
        return self

    @model_validator(mode="before")
    @classmethod
    def _device_is_no_longer_here(cls, raw: Any) -> Any:
        # `device` was a field until the device became a deployment setting (GAN_DEVICE, the torch_device
        # resource): in the hashed section, moving to a GPU made training stale. Old files that say the
        # default still load; any other value would be silently ignored, so it is an error saying where it went.
        if not isinstance(raw, dict) or "device" not in raw:
            return raw
        device = raw["device"]
        if device != "auto":
            raise PydanticCustomError(
                MOVED_SETTING, f"{device!r} is no longer read: the device is a deployment setting, not part of the "
                f"experiment. Delete training.device from the file and run with GAN_DEVICE={device} (make run "
                f"DEVICE={device}), or set the torch_device resource in the launchpad", {"field": "device"})
        return {k: v for k, v in raw.items() if k != "device"}


class EvaluatorConfig(Section):
    """The classifier whose features every metric is measured in (no Inception download)."""

    epochs: int = Field(15, gt=0)
    batch_size: int = Field(64, gt=1)  # batch norm needs two examples: batches of one would all be skipped
    lr: float = Field(1e-3, gt=0.0)
    feature_dim: int = Field(128, gt=1, le=MAX_WIDTH)  # penultimate layer width: the metric space


class InceptionConfig(Section):
    """Optional Inception scores: the FID Inception network from a local weights file (pytorch-fid's layout), checked
    by sha256 before use, never downloaded."""

    weights: str | None = None  # path of the weights file (pt_inception-2015-12-05-6726825d.pth); never downloaded

    @field_validator("weights")
    @classmethod
    def _a_path(cls, weights: str | None) -> str | None:
        return weights if weights is None else check_path_text(weights)
    sha256: str | None = None  # required with `weights`
    resize: InceptionResize = "clean"  # how images reach 299x299: "clean" or "legacy_pytorch" (docs/metrics.md)

    @model_validator(mode="after")
    def _hash_given(self) -> InceptionConfig:
        if self.weights is not None and (self.sha256 is None or not re.fullmatch(r"[0-9a-fA-F]{64}", self.sha256)):
            raise ValueError("evaluation.inception.sha256 must be the 64-hex sha256 of evaluation.inception.weights")
        return self

    @model_serializer(mode="wrap")
    def _resize_only_with_weights(self, handler: Any) -> dict[str, Any]:
        # Without weights nothing is measured in Inception: leaving the unused option out of the record keeps the
        # scores of experiments without Inception from going stale when the option was added.
        payload = handler(self)
        return payload if self.weights is not None else {k: v for k, v in payload.items() if k != "resize"}

    @property
    def label(self) -> str | None:
        """What every Inception column is measured with: the network, the weights' sha256, the resize; None if off."""
        if self.weights is None:
            return None
        return f"{INCEPTION_NETWORK}, weights sha256 {self.sha256.lower()}, resize {self.resize}"


class EvaluationConfig(Section):
    num_samples: int = Field(2000, gt=1)  # generated samples scored per checkpoint
    metrics: list[str] = list(DEFAULT_IMAGE_METRICS)  # registry keys (gan_assets.core.evaluation.metrics)
    best_metric: str = "fd"  # the column that names the best checkpoint
    best_direction: Literal["min", "max"] = "min"  # fd: lower is better
    # How G's batch norm normalises when sampling: `eval` uses running statistics, `train` each
    # generated batch's own, `reference` the statistics of the fixed reference z (§4.3).
    sampling: SamplingMode = "eval"
    inception: InceptionConfig = InceptionConfig()  # adds the `*_inception` columns when weights are given
    # Which generator scores and the gallery sample: `ema` the moving average (training.ema_decay) when the run has
    # one, else G itself; `raw` G itself always. The one used is recorded beside the scores.
    generator: Literal["ema", "raw"] = "ema"

    @model_serializer(mode="wrap")
    def _without_default_beyond(self, handler: Any) -> dict[str, Any]:
        return _without_default_options(self, handler(self), "evaluation")

    @model_validator(mode="after")
    def _known_metrics(self) -> EvaluationConfig:
        unknown = [name for name in self.metrics if name not in METRIC_COLUMNS]
        if unknown:
            raise ValueError(f"evaluation.metrics has unknown {unknown}; known: {sorted(METRIC_COLUMNS)}")
        if "precision_recall" in self.metrics and self.num_samples <= PRECISION_RECALL_K:
            raise ValueError(f"evaluation.num_samples {self.num_samples} is too few for precision_recall, whose "
                             f"k={PRECISION_RECALL_K} nearest neighbours need at least {PRECISION_RECALL_K + 1} samples")
        columns = [c for name in self.metrics for c in METRIC_COLUMNS[name]]
        columns += self.inception_columns
        if self.best_metric not in columns:
            raise ValueError(f"evaluation.best_metric {self.best_metric!r} is not computed; columns: {columns}")
        return self

    @property
    def inception_metrics(self) -> tuple[str, ...]:
        """The registry metrics scored in Inception features: none without weights; else `fd`, and `kid` and
        `precision_recall` where `metrics` lists them."""
        if self.inception.weights is None:
            return ()
        return tuple(name for name in INCEPTION_METRICS if name == "fd" or name in self.metrics)

    @property
    def inception_columns(self) -> list[str]:
        """The score columns measured in Inception features: `<column>_inception` (fd_inception, kid_inception, …)."""
        return [f"{c}_inception" for name in self.inception_metrics for c in METRIC_COLUMNS[name]]


class GalleryConfig(Section):
    """What the sample gallery draws. Each count has a ceiling: the gallery is pages a person reads, and a count
    beyond it only costs memory and minutes (10^6 interpolation steps would not fit in memory)."""

    grid_size: int = Field(8, gt=0, le=32)  # the grid is grid_size × grid_size reference-z samples
    per_class: int = Field(8, gt=0, le=64)  # samples in each class's row
    interpolation_pairs: int = Field(4, ge=0, le=64)  # rows of latent interpolations (0: none)
    interpolation_steps: int = Field(10, ge=2, le=64)  # images along each, both ends included
    neighbour_samples: int = Field(8, ge=0, le=256)  # generated samples shown with their nearest training images
    neighbours: int = Field(3, gt=0, le=32)  # nearest training images beside each (at most the training images)
    batch_dependence_targets: int = Field(8, ge=0, le=64)  # z of the §4.3 demonstration (0: none)


class ExperimentConfig(Section):
    seed: int = Field(0, ge=0, le=MAX_SEED)  # every random draw of the experiment derives from this
    dataset: DatasetConfig = DatasetConfig()
    reference_batch: ReferenceBatchConfig = ReferenceBatchConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    evaluator: EvaluatorConfig = EvaluatorConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    gallery: GalleryConfig = GalleryConfig()

    @model_validator(mode="after")
    def _fits_the_data(self) -> ExperimentConfig:
        train_size = dataset_train_size(self.dataset)
        if train_size is not None and self.training.batch_size > train_size:
            raise ValueError(
                f"training.batch_size {self.training.batch_size} is larger than the "
                f"{train_size} training images of dataset.source {self.dataset.source!r}"
            )
        if train_size is not None and self.reference_batch.size > train_size:
            raise ValueError(f"reference_batch.size {self.reference_batch.size} exceeds the {train_size} training images")
        if (self.model.conditional or self.model.auxiliary_classifier) and not dataset_is_labelled(self.dataset):
            raise ValueError(f"model.conditional / model.auxiliary_classifier need class labels, but "
                             f"dataset.source {self.dataset.source!r} is unlabelled here")
        self._options_fit()
        if self.gallery.grid_size**2 > self.reference_batch.size:
            raise ValueError(
                f"gallery.grid_size {self.gallery.grid_size} needs {self.gallery.grid_size ** 2} reference z, "
                f"but reference_batch.size is {self.reference_batch.size}"
            )
        return self

    def _options_fit(self) -> None:
        """The options beyond the tutorial, against the data and the other sections."""
        pack, model, training = self.model.pack, self.model, self.training
        if pack > 1 and (model.conditional or model.auxiliary_classifier):
            raise ValueError(f"model.pack {pack} judges several samples at once, which have no one class: "
                             f"model.conditional and model.auxiliary_classifier must be false with it")
        if training.batch_size % pack:
            raise ValueError(f"training.batch_size {training.batch_size} does not split into packs of model.pack "
                             f"{pack}: use a multiple of {pack}")
        if pack > 1 and model.norm in ("reference", "virtual") and self.reference_batch.size % pack:
            raise ValueError(f"reference_batch.size {self.reference_batch.size} does not split into packs of "
                             f"model.pack {pack} (model.norm {model.norm!r} packs the reference batch too)")
        if training.augment and self.dataset.source in POINT_SOURCES:
            raise ValueError(f"training.augment {training.augment} transforms images; dataset.source "
                             f"{self.dataset.source!r} holds 2-D points")

    @model_validator(mode="after")
    def _family_fits(self) -> ExperimentConfig:
        family = self.model.family
        if family == "gan":
            return self
        if self.dataset.source in POINT_SOURCES:
            raise ValueError(f"model.family {family!r} models images; dataset.source {self.dataset.source!r} holds "
                             f"2-D points (use model.family 'gan')")
        for name in GAN_TRAINING_FIELDS:
            if getattr(self.training, name) != TrainingConfig.model_fields[name].default:
                raise ValueError(f"training.{name} applies only to model.family 'gan' (model.family is {family!r}; "
                                 f"its learning rate is model.{family}.lr, its optimiser Adam)")
        if self.training.precision == "bf16":
            raise ValueError(f"training.precision 'bf16' applies only to model.family 'gan': {family!r} trains in "
                             f"fp32 (use auto or fp32)")
        if self.evaluation.sampling != "eval":
            raise ValueError(f"evaluation.sampling {self.evaluation.sampling!r} is a batch-norm mode of the GAN's "
                             f"generator; model.family {family!r} has no batch norm (use eval)")
        return self

    @model_validator(mode="after")
    def _metrics_fit_the_data(self) -> ExperimentConfig:
        # Point datasets drop the pixel metrics and always add the mode ones (metrics.scored_metrics);
        # the two mismatches that rule cannot repair are errors here, before any work.
        points, evaluation = self.dataset.source in POINT_SOURCES, self.evaluation
        if not points and set(DEFAULT_POINT_METRICS) & set(evaluation.metrics):
            raise ValueError(f"evaluation.metrics {list(DEFAULT_POINT_METRICS)} need a 2-D mixture source "
                             f"{POINT_SOURCES}, not dataset.source {self.dataset.source!r}")
        pixel_columns = {c for name in PIXEL_METRICS for c in METRIC_COLUMNS[name]}
        if points and evaluation.best_metric in pixel_columns:
            raise ValueError(f"evaluation.best_metric {evaluation.best_metric!r} is measured in pixels and is not "
                             f"scored on the 2-D points of {self.dataset.source!r}")
        return self


SECTIONS = ("dataset", "reference_batch", "model", "training", "evaluator", "evaluation", "gallery")


def dataset_is_labelled(dataset: DatasetConfig) -> bool:
    """Whether a source yields class labels that training with labels (§4.1) can use."""
    return getattr(dataset, "labels", True) is not False


def dataset_train_size(dataset: DatasetConfig) -> int | None:
    """Training examples a source yields when known before ingestion, so batch sizes are checked up
    front; None for file sources (and stacked_mnist), whose size only reading them tells: the
    `dataset` asset checks those at ingestion (gan_assets.core.data.fits)."""
    if dataset.source == "digits":
        return DIGITS_SIZE - round(DIGITS_SIZE * dataset.held_out_fraction)
    modes = {"ring8": 8, "grid25": 25}.get(dataset.source)  # mirrors sources/mixtures.py (a test ties them)
    if modes is None:
        return None
    # Mixtures are balanced (every mode holds n // M or n // M + 1 points) and split per mode.
    per_mode = [dataset.num_samples // modes + (k < dataset.num_samples % modes) for k in range(modes)]
    return sum(n - round(n * dataset.held_out_fraction) for n in per_mode)


class ConfigError(ValueError):
    """A bad experiment file: the message names the file and every offending field."""


def parse_experiment(raw: dict[str, Any] | None, origin: str = "<experiment>") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw or {})
    except ValidationError as err:
        errors = err.errors()
        problems = "; ".join(_describe(e) for e in errors[:SHOWN_PROBLEMS])
        more = f" (and {len(errors) - SHOWN_PROBLEMS} more)" if len(errors) > SHOWN_PROBLEMS else ""
        raise ConfigError(f"{origin}: {problems}{more}") from None


SHOWN_PROBLEMS = 10  # a file with thousands of unknown keys still gets a readable message


def _describe(error: dict[str, Any]) -> str:
    loc = error["loc"]
    if error["type"] == MOVED_SETTING:  # raised by the section for a key it no longer has: name that key
        loc = (*loc, error["ctx"]["field"])
    field = ".".join(str(part) for part in loc) or "<top level>"
    return f"{field}: {error['msg']}"


# Bounds on the experiment file itself. The shipped files are under 2 KiB and 4 levels deep; these stop a
# hostile or mistaken file (a 50 MB dump, thousands of nested brackets, an alias "billion laughs") from costing
# seconds or memory on every observation, sensor tick and run that reads it.
MAX_FILE_BYTES = 256 << 10
MAX_DEPTH = 32
MAX_NODES = 20_000  # values after alias expansion


class _ExperimentLoader(yaml.SafeLoader):
    """YAML's safe loader (no tags that build objects), bounded in depth and alias expansion, whose keys are
    plain names and never given twice in one mapping: plain YAML keeps the last silently, so `seed` written
    twice would train on a value nobody reads."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:  # the composer recurses: refuse before Python's stack runs out
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        _count_expanded(node, {}, set())
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(
                    None, None, "merge keys (<<) are not supported: write the keys out", key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]`: a key must name a field
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a plain name, not a {key_node.id}", key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first on line {seen[key].line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _count_expanded(node: yaml.Node, counted: dict[int, int], open_nodes: set[int]) -> int:
    """Values in `node` once every alias is expanded (what validating and hashing it will walk), refusing a
    document over MAX_NODES or one that contains itself. Memoised per node, so an alias bomb costs its size in
    YAML, not its expansion."""
    if id(node) in counted:
        return counted[id(node)]
    if id(node) in open_nodes:
        raise yaml.constructor.ConstructorError(None, None, "an alias refers to a value that contains it",
                                                node.start_mark)
    open_nodes.add(id(node))
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else (
        node.value if isinstance(node, yaml.SequenceNode) else [])
    total = 1 + sum(_count_expanded(child, counted, open_nodes) for child in children)
    open_nodes.discard(id(node))
    if total > MAX_NODES:
        raise yaml.constructor.ConstructorError(
            None, None, f"holds more than {MAX_NODES} values once its aliases are expanded", node.start_mark)
    counted[id(node)] = total
    return total


def read_experiment_bytes(path: Path) -> bytes:
    """The file's bytes, or a ConfigError saying what the path is instead: missing, not a regular file (a
    folder, a FIFO), unreadable, or over MAX_FILE_BYTES (never read whole)."""
    problem = not_a_regular_file(path)
    if problem:
        raise ConfigError(f"experiment file {path} {problem}")
    try:  # non-blocking: a special file that passes as regular (in /proc) returns at once instead of waiting
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"experiment file {path} cannot be read: {err.strerror or err}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"experiment file {path} is larger than {MAX_FILE_BYTES // 1024} KiB: an experiment is a "
                          "few lines of settings")
    return data


def not_a_regular_file(path: Path) -> str | None:
    """Why `path` is no regular file to read ("does not exist", "is not a regular file (a FIFO)", "cannot be read:
    …"), or None. It only stats: opening a FIFO to find out would wait for a writer forever."""
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    return None if stat.S_ISREG(mode) else f"is not a regular file ({file_kind(mode)})"


def file_kind(mode: int) -> str:
    """What a path that is not a regular file is, in words (for errors: "a FIFO", "a folder")."""
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket",
             stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    return next((name for test, name in kinds.items() if test(mode)), "not a plain file")


def parse_yaml(data: bytes, origin: str) -> Any:
    """The YAML document in `data`; every way it can be unreadable is a ConfigError naming `origin` and the line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{origin}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_ExperimentLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(p for p in (err.context, err.problem) if p)
        hint = " (YAML indents with spaces, never tabs)" if "\\t" in problem else ""
        raise ConfigError(f"{origin}:{where}: {problem}{hint}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{origin}: not valid YAML ({err})") from None


def read_yaml(path: Path) -> Any:
    return parse_yaml(read_experiment_bytes(path), str(path))


def parse_experiment_file(data: bytes, origin: str) -> ExperimentConfig:
    """An experiment from a file's bytes. Any failure (YAML, schema, or one nobody foresaw) is a ConfigError
    naming `origin`: a caller skipping bad files must never be stopped by another exception type."""
    try:
        raw = parse_yaml(data, origin)
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(f"{origin}: the top level must be a mapping of sections, got {type(raw).__name__}")
        return parse_experiment(raw, origin=origin)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 (the point: nothing escapes as another type, RecursionError included)
        raise ConfigError(f"{origin}: cannot be read as an experiment ({type(err).__name__}: {err})") from None


def load_experiment(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    return parse_experiment_file(read_experiment_bytes(path), str(path))


def section_hash(section: BaseModel | int) -> str:
    """Content hash of one effective section, stable across key order and formatting."""
    payload = section.model_dump(mode="json") if isinstance(section, BaseModel) else section
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
