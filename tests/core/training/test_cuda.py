"""The CUDA path (run by benchmarks/gpu_check.sh on a machine with a GPU; skipped elsewhere)."""

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
