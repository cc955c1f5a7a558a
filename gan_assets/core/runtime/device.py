"""Which torch device a run uses, how it is set up, and what it can compute fast: settings of the machine, never
of the experiment.

One rule places work on a device (`prepare_device`): resolve the name, make a CUDA device the process's current
one (so the CUDA context, cuBLAS handles and every `torch.cuda.*` query land on the training GPU, not GPU 0), and
choose between reproducible and fast kernels. Everything else takes the device from the tensors it is given.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

# The device is the machine's, not the experiment's: set by a deployment (GAN_DEVICE, or the torch_device
# resource in gan_assets/resources/torch_device.py), so moving to a GPU never makes training stale. The names are
# spelled here so that errors raised by this pure-torch module still point at the setting.
DEVICE_SETTING = "GAN_DEVICE"
DETERMINISM_SETTING = "GAN_DETERMINISTIC"
COMPILE_SETTING = "GAN_COMPILE"
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")
COMPILE_MODES = ("off", "default", "reduce-overhead")  # torch.compile's modes; reduce-overhead = CUDA graphs
# cuBLAS is deterministic only with a fixed workspace (torch's reproducibility notes); read when a handle is made.
CUBLAS_WORKSPACE = ":4096:8"
BF16_CAPABILITY = (8, 0)  # Ampere: the first CUDA cards with bf16 tensor cores (cuDNN has no bf16 convs before)


@dataclass(frozen=True)
class DeviceSettings:
    """How this deployment runs torch: the device, reproducible or fast kernels, and compilation. None of it is
    hashed: a run moved between devices or settings resumes and stays fresh."""

    name: str = "auto"  # auto, cpu, cuda, cuda:N
    deterministic: bool = True  # CUDA: deterministic algorithms (exact resume) or cuDNN's autotuned fastest
    compile: str = "off"  # torch.compile mode for the players' steps: off, default, reduce-overhead

    def __post_init__(self) -> None:
        check_device_name(self.name)
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"{COMPILE_SETTING}={self.compile!r} is not one of {', '.join(COMPILE_MODES)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, name: str | None = None) -> DeviceSettings:
        """GAN_DEVICE (unset or empty: auto), GAN_DETERMINISTIC (1/0, default 1), GAN_COMPILE (default off);
        `name`, when given, overrides GAN_DEVICE."""
        return cls(name=name or environ.get(DEVICE_SETTING) or "auto",
                   deterministic=_flag(environ.get(DETERMINISM_SETTING, ""), DETERMINISM_SETTING, default=True),
                   compile=environ.get(COMPILE_SETTING) or "off")

    @classmethod
    def of(cls, device: DeviceSettings | str | None) -> DeviceSettings:
        """Settings from what a caller passes: settings as they are, a device name with the environment's other
        settings, or None for the environment's."""
        if isinstance(device, DeviceSettings):
            return device
        return cls.from_env(name=device)


def _flag(value: str, setting: str, default: bool) -> bool:
    if value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{setting}={value!r}: use 1 or 0")


def check_device_name(name: str) -> str:
    """`name` when it is one of auto, cpu, cuda, cuda:N; else a ValueError naming the allowed values."""
    if not isinstance(name, str) or not DEVICE_NAME.fullmatch(name):
        raise ValueError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N "
                         f"(set by {DEVICE_SETTING}, or the torch_device resource's name)")
    return name


def resolve_device(name: str) -> torch.device:
    """`auto` → CUDA when present, else CPU; a CUDA device this machine lacks is an error naming the setting.
    A CUDA device always carries its index (`cuda` → `cuda:0`), so comparisons and `set_device` are exact."""
    if check_device_name(name) == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= available:
            raise ValueError(f"{DEVICE_SETTING} is {name!r}, but this machine has {available} CUDA device(s): "
                             f"use {DEVICE_SETTING}=auto or cpu (or the torch_device resource)")
        device = torch.device("cuda", device.index or 0)
    return device


def prepare_device(settings: DeviceSettings | str | None) -> torch.device:
    """The resolved device, made ready: on CUDA the current device, and deterministic or autotuned kernels."""
    settings = DeviceSettings.of(settings)
    device = resolve_device(settings.name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        set_cuda_determinism(settings.deterministic)
    return device


def set_cuda_determinism(deterministic: bool) -> None:
    """Deterministic: cuDNN picks reproducible algorithms (no atomics in the transposed convs' dgrad or the weight
    gradients), cuBLAS a fixed workspace, and an op with no deterministic kernel warns instead of failing (the
    metrics' `bincount` is one). Off: cuDNN benchmarks each conv shape once and takes the fastest."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def release_device_memory(device: torch.device) -> None:
    """Return a finished stage's cached GPU memory to the driver, so the next stage (or the next training the `gpu`
    pool lets start) finds the card empty; nothing to do on a CPU."""
    if device.type == "cuda":
        gc.collect()  # tensors held only by reference cycles (closures over the training state) go first
        clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)  # cuBLAS keeps one per stream
        if clear_workspaces is not None:
            clear_workspaces()
        torch.cuda.empty_cache()


def bf16_is_fast(device: torch.device) -> bool:
    """Whether `device` has bf16 matrix units: a CUDA card of compute capability 8.0 or newer (asked of that card,
    not the current one; `torch.cuda.is_bf16_supported()` also says yes on older cards, where bf16 is emulated and
    cuDNN has no bf16 convolutions), or a CPU with AVX-512 BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= BF16_CAPABILITY
    try:  # oneDNN's own check (AVX-512 BF16 / AMX); a private op, so a torch without it means "no"
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
