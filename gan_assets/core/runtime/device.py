"""Which torch device a run uses, and what it can compute fast: settings of the machine, never of the experiment."""

from __future__ import annotations

import re

import torch

# The device is the machine's, not the experiment's: set by a deployment (GAN_DEVICE, or the torch_device
# resource in gan_assets/resources/torch_device.py), so moving to a GPU never makes training stale. The name is spelled here so
# that errors raised by this pure-torch module still point at the setting.
DEVICE_SETTING = "GAN_DEVICE"
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str) -> str:
    """`name` when it is one of auto, cpu, cuda, cuda:N; else a ValueError naming the allowed values."""
    if not isinstance(name, str) or not DEVICE_NAME.fullmatch(name):
        raise ValueError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N "
                         f"(set by {DEVICE_SETTING}, or the torch_device resource's name)")
    return name


def resolve_device(name: str) -> torch.device:
    """`auto` → CUDA when present, else CPU; a CUDA device this machine lacks is an error naming the setting."""
    if check_device_name(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= available:
            raise ValueError(f"{DEVICE_SETTING} is {name!r}, but this machine has {available} CUDA device(s): "
                             f"use {DEVICE_SETTING}=auto or cpu (or the torch_device resource)")
    return device


def bf16_is_fast(device: torch.device) -> bool:
    """Whether this device has bf16 matrix units (CUDA Ampere+; a CPU with AVX-512 BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:  # oneDNN's own check (AVX-512 BF16 / AMX); a private op, so a torch without it means "no"
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
