"""The device rule: settings from the environment, the bf16 capability check asked of the training card, a CUDA
device made current with the chosen determinism. CUDA calls are stood in for, so a CPU machine checks the logic;
tests/core/training/test_cuda.py checks the real card (benchmarks/gpu_proof.sh)."""

import os

import pytest
import torch

from gan_assets.core.runtime import device as device_module
from gan_assets.core.runtime.device import DeviceSettings, bf16_is_fast, prepare_device, resolve_device
from gan_assets.core.training.loop import resolve_precision


def test_the_suite_trains_on_the_cpu_whatever_the_shell_says():
    assert os.environ["GAN_DEVICE"] == "cpu" and DeviceSettings.from_env().name == "cpu"


def test_settings_come_from_the_environment_and_refuse_unknown_values():
    env = {"GAN_DEVICE": "cuda:1", "GAN_DETERMINISTIC": "0", "GAN_COMPILE": "reduce-overhead"}
    assert DeviceSettings.from_env(env) == DeviceSettings("cuda:1", deterministic=False, compile="reduce-overhead")
    assert DeviceSettings.from_env({}) == DeviceSettings("auto", deterministic=True, compile="off")
    assert DeviceSettings.from_env({"GAN_DEVICE": ""}, name="cpu").name == "cpu"
    with pytest.raises(ValueError, match=r"GAN_DETERMINISTIC='maybe': use 1 or 0"):
        DeviceSettings.from_env({"GAN_DETERMINISTIC": "maybe"})
    with pytest.raises(ValueError, match=r"GAN_COMPILE='max' is not one of off, default, reduce-overhead"):
        DeviceSettings.from_env({"GAN_COMPILE": "max"})
    with pytest.raises(ValueError, match=r"device 'gpu' is not one of auto, cpu, cuda, cuda:N"):
        DeviceSettings("gpu")


class FakeCuda:
    """Two CUDA cards of the given compute capabilities, and a record of what was asked of them."""

    def __init__(self, monkeypatch, capabilities=((7, 5), (8, 0))):
        self.capabilities, self.asked, self.current, self.deterministic = capabilities, [], None, None
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(capabilities))
        monkeypatch.setattr(torch.cuda, "get_device_capability", self.capability)
        monkeypatch.setattr(torch.cuda, "set_device", self.set_device)
        monkeypatch.setattr(torch, "use_deterministic_algorithms", self.use_deterministic)
        for flag in ("deterministic", "benchmark"):  # restored after the test
            monkeypatch.setattr(torch.backends.cudnn, flag, getattr(torch.backends.cudnn, flag))
        monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)

    def capability(self, device=None):
        self.asked.append(device)
        return self.capabilities[torch.device(device).index]

    def set_device(self, device):
        self.current = torch.device(device)

    def use_deterministic(self, mode, warn_only=False):
        self.deterministic = (mode, warn_only)


def test_bf16_is_fast_only_from_ampere_on_and_is_asked_of_the_training_card(monkeypatch):
    """`torch.cuda.is_bf16_supported()` says yes on a T4 (7.5: emulated, no bf16 convs in cuDNN) and asks about the
    current card; the check asks the card training uses, by compute capability."""
    cuda = FakeCuda(monkeypatch)
    assert bf16_is_fast(torch.device("cuda:0")) is False
    assert bf16_is_fast(torch.device("cuda:1")) is True
    assert cuda.asked == [torch.device("cuda:0"), torch.device("cuda:1")]
    assert resolve_precision("auto", torch.device("cuda:0")) is None  # fp32 on the pre-Ampere card
    assert resolve_precision("auto", torch.device("cuda:1")) is torch.bfloat16
    assert resolve_precision("bf16", torch.device("cuda:0")) is torch.bfloat16  # asked for explicitly: as told


def test_a_cuda_device_is_made_current_with_deterministic_kernels_by_default(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    assert resolve_device("cuda") == torch.device("cuda", 0)  # always with its index
    assert prepare_device(DeviceSettings("cuda:1")) == torch.device("cuda", 1)
    assert cuda.current == torch.device("cuda", 1)  # the CUDA context and cuBLAS handles land on GPU 1, not GPU 0
    assert cuda.deterministic == (True, True)
    assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_determinism_off_lets_cudnn_autotune(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    prepare_device(DeviceSettings("cuda", deterministic=False))
    assert cuda.current == torch.device("cuda", 0) and cuda.deterministic == (False, True)
    assert torch.backends.cudnn.deterministic is False and torch.backends.cudnn.benchmark is True


def test_the_cpu_is_left_as_it_is(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(device))
    assert prepare_device("cpu") == torch.device("cpu") and calls == []


def test_releasing_memory_empties_the_cuda_cache_only_on_a_gpu(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    device_module.release_device_memory(torch.device("cpu"))
    assert emptied == []
    device_module.release_device_memory(torch.device("cuda", 0))
    assert emptied == [True]
