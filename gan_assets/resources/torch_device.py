"""How training runs torch: a property of the machine a deployment runs on, not of the experiment.

It is a resource, not a config section, so nothing hashes it: moving the same experiment to a GPU machine, or
trading exact resume for cuDNN's fastest kernels, keeps its training fresh (the run key and `config/training_yaml` never
see it). `build_definitions` sets it from `GAN_DEVICE`, `GAN_DETERMINISTIC` and `GAN_COMPILE`; the launchpad can
override it for one run.
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import field_validator

from gan_assets.core.runtime.device import (
    COMPILE_MODES,
    COMPILE_SETTING,
    DETERMINISM_SETTING,
    DEVICE_SETTING,
    DeviceSettings,
    check_device_name,
)


class TorchDevice(dg.ConfigurableResource):
    """The torch device of training (auto: CUDA when present, else CPU; cpu; cuda; cuda:N), whether CUDA kernels are
    deterministic (exact resume) or autotuned (faster), and the `torch.compile` mode of the training step."""

    name: str = "auto"
    deterministic: bool = True
    compile: str = "off"

    @field_validator("name")
    @classmethod
    def _known_device(cls, name: str) -> str:
        return check_device_name(name)

    @field_validator("compile")
    @classmethod
    def _known_mode(cls, mode: str) -> str:
        if mode not in COMPILE_MODES:
            raise ValueError(f"compile {mode!r} is not one of {', '.join(COMPILE_MODES)}")
        return mode

    @classmethod
    def from_env(cls, name: str | None = None) -> TorchDevice:
        """The environment's settings (`name`, when given, instead of GAN_DEVICE)."""
        # raw values: the resource's own validation names a bad one (pydantic reads 1/0/true/false as a bool)
        return cls(name=name or device_from_env(), deterministic=os.environ.get(DETERMINISM_SETTING) or True,
                   compile=os.environ.get(COMPILE_SETTING) or "off")

    def settings(self) -> DeviceSettings:
        return DeviceSettings(name=self.name, deterministic=self.deterministic, compile=self.compile)


def device_from_env() -> str:
    """`GAN_DEVICE`, or auto when it is unset or empty (`GAN_DEVICE= make ui` means the default too)."""
    return os.environ.get(DEVICE_SETTING) or "auto"


__all__ = ["TorchDevice", "device_from_env"]
