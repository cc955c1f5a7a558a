"""Which torch device training runs on: a property of the machine a deployment runs on, not of the experiment.

It is a resource, not a config section, so nothing hashes it: moving the same experiment to a GPU machine
keeps its training fresh (the run key and `config/training` never see the device). `build_definitions`
sets it from `GAN_DEVICE` (unset: auto); the launchpad can override it for one run.
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import field_validator

from gan_assets.core.runtime.device import DEVICE_SETTING, check_device_name


class TorchDevice(dg.ConfigurableResource):
    """The torch device of training: auto (CUDA when present, else CPU), cpu, cuda or cuda:N."""

    name: str = "auto"

    @field_validator("name")
    @classmethod
    def _known_device(cls, name: str) -> str:
        return check_device_name(name)


def device_from_env() -> str:
    """`GAN_DEVICE`, or auto when it is unset or empty (`GAN_DEVICE= make ui` means the default too)."""
    return os.environ.get(DEVICE_SETTING) or "auto"


__all__ = ["TorchDevice", "device_from_env"]
