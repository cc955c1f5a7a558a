"""The CUDA path (run by benchmarks/gpu_proof.sh on a machine with a GPU; skipped elsewhere: `cuda` marker)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from gan_assets.core.config import parse_experiment
from gan_assets.core.evaluation.loading import load_generator
from gan_assets.core.training.run import RunInputs, train_run

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_a_run_trains_on_cuda_and_its_checkpoints_load_on_cpu(tmp_path: Path, precision):
    config = parse_experiment({"dataset": {"image_size": 32}, "reference_batch": {"size": 16},
                               "model": {"z_dim": 16, "g_width": 16, "d_width": 16},
                               "training": {"steps": 40, "batch_size": 32, "checkpoint_every": 20, "log_every": 10,
                                            "precision": precision}})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (256, 1, 32, 32), dtype=np.uint8)
    labels = np.arange(256) % 10
    inputs = RunInputs(images=images, labels=labels, num_classes=10, reference_images=images[:16],
                       reference_labels=labels[:16], reference_z=rng.standard_normal((16, 16)).astype(np.float32))
    manifest = train_run(config, inputs, tmp_path, device="cuda", log=lambda message: None)
    assert manifest.device.startswith("cuda") and [e.step for e in manifest.checkpoints] == [20, 40]
    history = manifest.history_frame()
    assert np.isfinite(history[["loss_d", "loss_g"]].to_numpy()).all()
    generator = load_generator(manifest, manifest.latest)  # rebuilt on the CPU from safetensors
    assert generator(torch.randn(4, 16)).shape == (4, 1, 32, 32)


def tiny_inputs(side=16):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (128, 1, side, side), dtype=np.uint8)
    labels = np.arange(128) % 10
    return RunInputs(images=images, labels=labels, num_classes=10, reference_images=images[:16],
                     reference_labels=labels[:16], reference_z=rng.standard_normal((16, 16)).astype(np.float32))


def tiny(steps=12, **model):
    return parse_experiment({"dataset": {"image_size": 16}, "reference_batch": {"size": 16},
                             "model": {"z_dim": 16, "g_width": 8, "d_width": 8, **model}, "gallery": {"grid_size": 4},
                             "training": {"steps": steps, "batch_size": 16, "checkpoint_every": steps // 2,
                                          "log_every": steps // 4, "precision": "bf16"}})


@pytest.mark.parametrize("model", [{}, {"norm": "virtual"}, {"conditional": True, "auxiliary_classifier": True}])
def test_deterministic_kernels_make_a_resumed_cuda_run_bit_identical(tmp_path: Path, model):
    from gan_assets.core.runtime.device import DeviceSettings

    settings = DeviceSettings("cuda", deterministic=True)
    whole = train_run(tiny(**model), tiny_inputs(), tmp_path / "whole", device=settings, log=lambda m: None)
    train_run(tiny(6, **model), tiny_inputs(), tmp_path / "split", device=settings, log=lambda m: None)
    resumed = train_run(tiny(**model), tiny_inputs(), tmp_path / "split", device=settings, log=lambda m: None)
    assert resumed.latest.generator_sha256 == whole.latest.generator_sha256
    assert resumed.latest.discriminator_sha256 == whole.latest.discriminator_sha256


def test_bf16_gradients_keep_their_weights_layout_for_fused_adam():
    from gan_assets.core.training.loop import STEP_FUNCTIONS
    from gan_assets.core.training.run import _device_data, _fresh_state

    device = torch.device("cuda", 0)
    config, inputs = tiny(), tiny_inputs()
    state = _fresh_state(config, inputs, device)
    for update in ("alternating", "simultaneous"):
        STEP_FUNCTIONS[update](state, _device_data(inputs, device), config.training)  # fused Adam would raise
        for player in (state.generator, state.discriminator):
            assert all(p.grad.stride() == p.stride() for p in player.parameters())


def test_a_cpu_checkpoint_resumes_on_cuda_and_back(tmp_path: Path):
    train_run(tiny(6), tiny_inputs(), tmp_path, device="cpu", log=lambda m: None)
    on_gpu = train_run(tiny(12), tiny_inputs(), tmp_path, device="cuda", log=lambda m: None)
    assert [e.step for e in on_gpu.checkpoints] == [6, 12]
    back = train_run(tiny(18), tiny_inputs(), tmp_path, device="cpu", log=lambda m: None)
    assert [e.step for e in back.checkpoints] == [6, 12, 18]
    assert np.isfinite(back.history_frame()[["loss_d", "loss_g"]].to_numpy()).all()


def test_training_releases_the_cards_cached_memory(tmp_path: Path):
    train_run(tiny(), tiny_inputs(), tmp_path, device="cuda", log=lambda m: None)
    assert torch.cuda.memory_allocated() == 0 and torch.cuda.memory_reserved() == 0
