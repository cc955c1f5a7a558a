"""Data-parallel training (core/training/distributed.py) with real torchrun ranks on gloo: the trainer entry point run with
`--extras` (no Dagster), so these pin the core; tests/resources/test_trainer_launch.py runs it through Dagster.

A tiny image GAN with reference batch norm, 12 steps of a global batch of 16, checkpoints every 4 steps.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_assets.core.config import parse_experiment
from gan_assets.core.training.distributed import DataParallel, shard_rows
from gan_assets.core.training.manifest import RunManifest
from gan_assets.core.training.run import RunInputs, train_run
from gan_assets.core.training.trainer_inputs import read_trainer_inputs, write_trainer_inputs

PROJECT_ROOT = Path(__file__).resolve().parents[3]
RAW = {"seed": 0, "dataset": {"image_size": 16}, "reference_batch": {"size": 8},
       "model": {"z_dim": 8, "g_width": 4, "d_width": 4, "norm": "reference"},
       "training": {"steps": 12, "batch_size": 16, "checkpoint_every": 4, "log_every": 4, "precision": "fp32"},
       "gallery": {"grid_size": 2}}
# float32 sums of two half-batch gradients vs one whole-batch gradient, after 12 Adam steps: measured |diff| < 1e-6
LOSS_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
pytestmark = pytest.mark.distributed


def tiny_inputs() -> RunInputs:
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    labels = np.arange(64) % 4
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(1)).numpy()
    return RunInputs(images=images, labels=labels, num_classes=4, reference_images=images[:8],
                     reference_labels=labels[:8], reference_z=z, class_names=("a", "b", "c", "d"))


def launch(root: Path, nproc: int, crash: str | None = None, max_restarts: int = 0) -> subprocess.CompletedProcess:
    """torchrun --standalone with `nproc` ranks of the trainer on the tiny run in `root/run`."""
    root.mkdir(parents=True, exist_ok=True)
    extras = {"config": parse_experiment(RAW).model_dump(mode="json"), "run_dir": str(root / "run"), "device": "cpu",
              "inputs": str(write_trainer_inputs(tiny_inputs(), root / "inputs.npz")), "launch_dir": str(root / "launch")}
    (root / "extras.json").write_text(json.dumps(extras))
    env = {k: v for k, v in os.environ.items() if k != "GAN_CRASH_AT"} | ({"GAN_CRASH_AT": crash} if crash else {})
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "--max-restarts", str(max_restarts), "-m", "gan_assets.trainer.pipes_trainer",
               "--extras", str(root / "extras.json")]
    return subprocess.run(command, cwd=PROJECT_ROOT, env=env | {"PYTHONPATH": str(PROJECT_ROOT)},
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two-ranks")
    done = launch(root, 2)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> RunManifest:
    return train_run(parse_experiment(RAW), tiny_inputs(), tmp_path_factory.mktemp("one") / "run", device="cpu",
                     log=lambda message: None)


def test_two_ranks_reach_the_losses_of_one_process_at_the_same_global_batch(two_ranks, one_process):
    two = RunManifest.read(two_ranks / "run")
    assert [c.step for c in two.checkpoints] == [c.step for c in one_process.checkpoints] == [4, 8, 12]
    histories = two.history_frame(), one_process.history_frame()
    assert histories[0]["step"].tolist() == histories[1]["step"].tolist() == [4, 8, 12]
    assert np.isfinite(histories[0].to_numpy()).all()
    columns = ["loss_d", "loss_g", "d_x", "d_g_z"]
    np.testing.assert_allclose(histories[0][columns].to_numpy(), histories[1][columns].to_numpy(), **LOSS_TOLERANCE)


def test_two_ranks_end_with_identical_weights_and_one_set_of_checkpoints(two_ranks):
    statuses = [json.loads((two_ranks / "launch" / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert [s["status"] for s in statuses] == ["finished", "finished"]
    assert statuses[0]["weights_sha256"] == statuses[1]["weights_sha256"]
    files = sorted(p.name for p in (two_ranks / "run").iterdir())
    assert files == ["history.parquet", "manifest.json"] + sorted(
        f"step_{s:06d}.{kind}" for s in (4, 8, 12) for kind in ("discriminator.safetensors", "generator.safetensors",
                                                                  "state.pt")) + ["tensorboard"]  # rank 0's alone


def test_a_killed_two_rank_run_restarts_from_its_checkpoints_and_ends_as_an_uninterrupted_one(two_ranks, tmp_path):
    # both ranks SIGKILL themselves at their 7th step of each attempt: step 7 (then resume at 4), step 11 (resume
    # at 8), then the third attempt finishes: torchrun --max-restarts 2 brings the ranks back each time
    done = launch(tmp_path, 2, crash="train_step:7", max_restarts=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from step 4" in done.stdout and "resuming from step 8" in done.stdout
    resumed, uninterrupted = RunManifest.read(tmp_path / "run"), RunManifest.read(two_ranks / "run")
    assert [c.step for c in resumed.checkpoints] == [4, 8, 12]
    assert resumed.latest.generator_sha256 == uninterrupted.latest.generator_sha256
    assert resumed.latest.discriminator_sha256 == uninterrupted.latest.discriminator_sha256


def test_a_global_batch_that_does_not_split_over_the_ranks_is_refused():
    assert shard_rows(16, 1, 2) == slice(8, 16)
    with pytest.raises(ValueError, match="batch_size 10 does not split evenly over 4 ranks"):
        shard_rows(10, 0, 4)


def test_one_process_is_not_data_parallel():
    assert DataParallel.from_env({}) is None and DataParallel.from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    ranks = DataParallel.from_env({"WORLD_SIZE": "4", "RANK": "5", "LOCAL_RANK": "1"})
    assert (ranks.rank, ranks.world_size, ranks.local_rank, ranks.is_leader) == (5, 4, 1, False)


def test_trainer_inputs_round_trip(tmp_path):
    inputs = tiny_inputs()
    back = read_trainer_inputs(write_trainer_inputs(inputs, tmp_path / "inputs.npz"))
    for name in ("images", "labels", "reference_images", "reference_labels", "reference_z"):
        np.testing.assert_array_equal(getattr(back, name), getattr(inputs, name))
    assert (back.num_classes, back.class_names, back.modes) == (4, ("a", "b", "c", "d"), None)
    with pytest.raises(FileNotFoundError, match="shared volume"):
        read_trainer_inputs(tmp_path / "missing.npz")

