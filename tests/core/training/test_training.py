"""Training steps move both players, report finite numbers, and resume exactly from a checkpoint."""

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gan_assets.core.config import parse_experiment
from gan_assets.core.evaluation.loading import load_generator
from gan_assets.core.models.gan.networks import Discriminator, Generator, dcgan_init_
from gan_assets.core.training.loop import STEP_FUNCTIONS, TrainingData, new_state
from gan_assets.core.training.manifest import RunManifest
from gan_assets.core.training.run import RunInputs, train_run

TINY = {"model": {"z_dim": 8, "g_width": 4, "d_width": 4},
        "training": {"steps": 6, "batch_size": 8, "checkpoint_every": 3, "log_every": 2},
        "reference_batch": {"size": 8}, "gallery": {"grid_size": 2}}


def fake_digits(n=64, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 16, 16), dtype=np.uint8)


def fake_data() -> TrainingData:
    return TrainingData(torch.from_numpy(fake_digits()), torch.arange(64) % 4)


def tiny_config(**training):
    raw = copy.deepcopy(TINY)
    raw["dataset"] = {"image_size": 16}
    raw["training"].update(training)
    return parse_experiment(raw)


def tiny_state(config, norm="batch"):
    torch.manual_seed(0)
    g, d = Generator(8, 4, 1, 16, norm), Discriminator(4, 1, 16, norm)
    dcgan_init_(g), dcgan_init_(d)
    return new_state(g, d, config.training, seed=0, device=torch.device("cpu"))


def params(module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
@pytest.mark.parametrize("loss", ["minimax", "non_saturating", "maximum_likelihood"])
def test_a_step_moves_both_players_and_reports_finite_numbers(update, loss):
    config = tiny_config(update=update, generator_loss=loss)
    state = tiny_state(config)
    g0, d0 = params(state.generator), params(state.discriminator)
    stats = STEP_FUNCTIONS[update](state, fake_data(), config.training)
    assert torch.isfinite(stats).all() and stats.shape == (4,)
    assert (params(state.generator) - g0).abs().max() > 0
    assert (params(state.discriminator) - d0).abs().max() > 0
    assert 0 < stats[2] < 1 and 0 < stats[3] < 1  # D(x), D(G(z)) are probabilities


def test_simultaneous_g_gradient_ignores_ds_own_update():
    """G's step must use D's parameters from before D moved: same as computing G's grads first."""
    config = tiny_config(update="simultaneous")
    a, b = tiny_state(config), tiny_state(config)
    data = fake_data()
    STEP_FUNCTIONS["simultaneous"](a, data, config.training)
    # by hand on b: freeze D's update (lr 0) — G's move must not change
    for group in b.opt_d.param_groups:
        group["lr"] = 0.0
    STEP_FUNCTIONS["simultaneous"](b, data, config.training)
    torch.testing.assert_close(params(a.generator), params(b.generator))


def test_d_steps_runs_k_discriminator_updates():
    config = tiny_config(d_steps=3)
    state = tiny_state(config)
    STEP_FUNCTIONS["alternating"](state, fake_data(), config.training)
    assert state.opt_d.state[next(iter(state.discriminator.parameters()))]["step"] == 3
    assert state.opt_g.state[next(iter(state.generator.parameters()))]["step"] == 1


def run(config, run_dir: Path) -> RunManifest:
    data, labels = fake_digits(), np.arange(64) % 4
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(1)).numpy()
    inputs = RunInputs(images=data, labels=labels, num_classes=4, reference_images=data[:8],
                       reference_labels=labels[:8], reference_z=z)
    return train_run(config, inputs, run_dir, log=lambda message: None)


def test_run_writes_checkpoints_history_and_manifest(tmp_path: Path):
    manifest = run(tiny_config(), tmp_path)
    assert [c.step for c in manifest.checkpoints] == [3, 6]
    assert [c.name for c in manifest.checkpoints] == ["step_000003", "step_000006"]
    assert RunManifest.read(tmp_path) == manifest
    history = pd.read_parquet(tmp_path / "history.parquet")
    assert history["step"].tolist() == [2, 4, 6]
    assert np.isfinite(history[["loss_d", "loss_g", "d_x", "d_g_z"]].to_numpy()).all()
    generator = load_generator(manifest, manifest.latest)
    assert generator(torch.randn(2, 8)).shape == (2, 1, 16, 16)


def test_resume_continues_exactly_where_it_stopped(tmp_path: Path):
    whole = run(tiny_config(), tmp_path / "whole")
    run(tiny_config(steps=3), tmp_path / "split")  # "crashes" after the first checkpoint…
    resumed = run(tiny_config(), tmp_path / "split")  # …and a retry picks up from it
    assert [c.step for c in resumed.checkpoints] == [3, 6]
    final = [m.latest.generator_sha256 for m in (whole, resumed)]
    assert final[0] == final[1]
    # the short run logged its own last step (3); the resumed history continues it without repeats
    assert pd.read_parquet(tmp_path / "split/history.parquet")["step"].tolist() == [2, 3, 4, 6]


@pytest.mark.parametrize("norm", ["reference", "virtual"])
def test_reference_norm_runs_and_checkpoints_keep_the_reference(tmp_path: Path, norm):
    raw = copy.deepcopy(TINY)
    raw["dataset"] = {"image_size": 16}
    raw["model"]["norm"] = norm
    manifest = run(parse_experiment(raw), tmp_path)
    generator = load_generator(manifest, manifest.latest)
    assert generator.reference.shape == (8, 8)
    z = torch.randn(4, 8)
    torch.testing.assert_close(generator(z)[:1], generator(z[:1]))


def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path):
    from gan_assets.core.training.loop import NonFiniteTraining

    # lr 1e30 is finite (the config accepts it) but Adam's first steps throw the weights to ~1e30: the next
    # forward pass overflows. A checkpoint every step shows that no checkpoint of a non-finite state is listed.
    with pytest.raises(NonFiniteTraining, match=r"step \d: (discriminator|generator)'s (loss_d|loss_g|weights)") as err:
        run(tiny_config(checkpoint_every=1, log_every=1, lr_g=1e30), tmp_path)
    manifest = RunManifest.read(tmp_path)
    assert 1 <= manifest.latest.step == err.value.step - 1  # the last good one stays the latest
    for entry in manifest.checkpoints:
        generator = load_generator(manifest, entry)
        assert torch.isfinite(params(generator)).all()


def test_resume_refuses_a_replaced_checkpoint_file(tmp_path: Path):
    from gan_assets.core.storage import StoredFileError

    run(tiny_config(), tmp_path / "a")
    run(tiny_config(steps=3), tmp_path / "b")
    latest = RunManifest.read(tmp_path / "b").latest
    (tmp_path / "b" / latest.discriminator).write_bytes((tmp_path / "a" / latest.discriminator).read_bytes())
    (tmp_path / "b" / latest.discriminator).write_bytes(  # another valid file: a's D at step 6
        (tmp_path / "a" / "step_000006.discriminator.safetensors").read_bytes())
    with pytest.raises(StoredFileError, match=r"step_000003.discriminator.safetensors has sha256 .* replaced"):
        run(tiny_config(), tmp_path / "b")


def test_a_cuda_device_this_machine_lacks_names_the_setting():
    from gan_assets.core.runtime.device import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"GAN_DEVICE is 'cuda', but this machine has 0 CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match=r"device 'tpu' is not one of auto, cpu, cuda, cuda:N \(set by GAN_DEVICE"):
        resolve_device("tpu")


def test_bf16_fast_path_losses_match_fp32_on_a_fixed_batch():
    """The fast path (bf16 autocast, channels_last) computes the same costs as fp32, to bf16's precision."""
    from gan_assets.core.training.loop import _autocast, _d_loss, _g_loss

    config = tiny_config()
    x = torch.from_numpy(fake_digits(16, seed=3)).float().div(127.5).sub(1)
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(4))
    y = torch.zeros(16, dtype=torch.long)
    losses = {}
    for dtype in (None, torch.bfloat16):
        state = tiny_state(config)
        state.compute_dtype = dtype
        state.generator.to(memory_format=torch.channels_last), state.discriminator.to(memory_format=torch.channels_last)
        with _autocast(state, torch.device("cpu")):
            fake = state.generator(z, y)
            loss_d, real_logits, _ = _d_loss(state, (x.contiguous(memory_format=torch.channels_last), y),
                                             (fake.detach(), y), config.training)
            loss_g, _ = _g_loss(state, fake, y, config.training)
        assert loss_d.dtype == loss_g.dtype == torch.float32  # costs in fp32 whatever the convs ran in
        losses[dtype] = torch.stack([loss_d, loss_g]).detach()
    torch.testing.assert_close(losses[torch.bfloat16], losses[None], rtol=2e-2, atol=2e-3)


def test_progress_lines_give_the_rate_and_the_time_left():
    from gan_assets.core.training.run import progress_rate

    assert progress_rate(100, 4900, 4.0) == ", 25.0 steps/s, ETA 3m16s"
    assert progress_rate(0, 5000, 0.0) == ""  # nothing timed yet
    assert progress_rate(100, 10**12, 4.0) == ", 25.0 steps/s, ETA 1,268y"  # 10^12 steps: said in years
    assert progress_rate(100, 4_900_000, 4.0) == ", 25.0 steps/s, ETA 2d06h"


def test_a_step_count_that_implies_a_long_run_is_warned_once_with_its_eta(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("gan_assets.core.training.run.LONG_RUN_SECONDS", 0.0)  # every run is "long" here
    data, labels = fake_digits(), np.arange(64) % 4
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(1)).numpy()
    inputs = RunInputs(images=data, labels=labels, num_classes=4, reference_images=data[:8],
                       reference_labels=labels[:8], reference_z=z)
    lines = []
    train_run(tiny_config(), inputs, tmp_path, log=lines.append)
    warnings = [line for line in lines if line.startswith("warning: training.steps")]
    assert len(warnings) == 1 and "steps/s ends in" in warnings[0]  # training went on to its end
    assert RunManifest.read(tmp_path).latest.step == tiny_config().training.steps


def test_a_checkpoint_from_another_kind_of_device_resumes_with_a_stream_from_seed_and_step():
    from gan_assets.core.training.checkpoints import restore_rng

    rng = torch.Generator().manual_seed(5)
    restore_rng(rng, torch.zeros(16, dtype=torch.uint8), "cuda", step=40)  # a CUDA state cannot seed a CPU generator
    expected = torch.Generator().manual_seed(5 * 1_000_003 + 40)
    torch.testing.assert_close(torch.rand(3, generator=rng), torch.rand(3, generator=expected))
    saved = torch.Generator().manual_seed(1)
    state, following = saved.get_state(), torch.rand(3, generator=saved)
    other = torch.Generator().manual_seed(9)
    restore_rng(other, state, "cpu", step=40)  # the same kind: exactly the saved stream
    torch.testing.assert_close(torch.rand(3, generator=other), following)
