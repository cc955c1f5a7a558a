"""Guard rails: finite weights, D domination, mode collapse, regression — each can fail."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from gan_assets.core.config import ModelConfig
from gan_assets.core.storage import file_sha256
from gan_assets.core.training.guards import d_domination, mode_collapse, regression, weights_are_finite
from gan_assets.core.training.manifest import CheckpointEntry, RunManifest


def write_checkpoint(run_dir: Path, value: float) -> RunManifest:
    save_file({"w": torch.full((3,), value), "n": torch.tensor([1])}, str(run_dir / "g.safetensors"))
    save_file({"w": torch.ones(2)}, str(run_dir / "d.safetensors"))
    entry = CheckpointEntry(step=1, generator="g.safetensors", discriminator="d.safetensors", state="s.pt",
                            generator_sha256=file_sha256(run_dir / "g.safetensors"))
    return RunManifest(run_dir=run_dir, model=ModelConfig(), shape=(1, 8, 8), num_classes=1, device="cpu",
                       checkpoints=(entry,))


@pytest.mark.parametrize("value, finite", [(0.5, True), (float("nan"), False), (float("inf"), False)])
def test_finite_weights(tmp_path, value, finite):
    passed, facts = weights_are_finite(write_checkpoint(tmp_path, value))
    assert passed == finite and facts["non_finite_tensors"] == (0 if finite else 1)


def history(loss_d, loss_g) -> pd.DataFrame:
    return pd.DataFrame({"step": np.arange(1, len(loss_d) + 1) * 10, "loss_d": loss_d, "loss_g": loss_g})


def test_d_domination_needs_both_a_winning_d_and_a_rising_g():
    steps = 20
    winning, rising = np.full(steps, 0.01), np.linspace(1, 5, steps)
    assert d_domination(history(winning, rising))[0] is False
    assert d_domination(history(winning, rising[::-1]))[0] is True  # D wins, G still improving: fine
    assert d_domination(history(np.full(steps, 0.6), rising))[0] is True
    passed, facts = d_domination(history(winning, rising))
    assert facts["share_loss_d_near_zero"] == 1.0 and facts["loss_g_slope_per_step"] == pytest.approx(4 / 190)


def test_mode_collapse_against_the_real_floor():
    floor = pd.Series({"class_coverage": 10.0, "recall": 0.9})
    assert mode_collapse(pd.Series({"class_coverage": 9.0, "recall": 0.8}), floor)[0] is True
    assert mode_collapse(pd.Series({"class_coverage": 8.0, "recall": 0.8}), floor)[0] is False
    assert mode_collapse(pd.Series({"class_coverage": 10.0, "recall": 0.4}), floor)[0] is False


def test_regression_respects_direction_and_tolerance():
    assert regression(10.5, 10.0, "min")[0] is True  # 5% worse: within 10%
    assert regression(12.0, 10.0, "min")[0] is False
    assert regression(8.0, 10.0, "max")[0] is False
    assert regression(12.0, 10.0, "max")[0] is True
    assert regression(3.0, None, "min") == (True, {"current": 3.0, "previous": "none"})
