"""The options beyond the tutorial (G_ema, DiffAugment and ADA, spectral norm, R1, the hinge game, PacGAN packing):
each does what its paper says, trains with the others, resumes bit-identically on the CPU, and a combination that
cannot work is a config error naming both fields."""

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from gan_assets.core.config import ConfigError, parse_experiment
from gan_assets.core.evaluation.loading import load_generator, sampled_weights
from gan_assets.core.models.gan.losses import discriminator_hinge_half, generator_loss
from gan_assets.core.models.gan.networks import Discriminator, build_discriminator, dcgan_init_
from gan_assets.core.training.augment import ADA_IMAGES, ADA_INTERVAL, ada_adjust, augment, cutout, translation
from gan_assets.core.training.ema import ema_decay_at, new_ema, update_ema
from gan_assets.core.training.loop import r1_penalty
from tests.core.training.test_training import TINY, run, tiny_config

# -- G_ema -----------------------------------------------------------------------------------------------------


def test_the_ema_decay_warms_up_then_holds():
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)  # (1 + 0) / (10 + 0): the start is mostly forgotten
    assert ema_decay_at(0.999, 90) == pytest.approx(91 / 100)
    assert ema_decay_at(0.999, 10**6) == 0.999


def test_an_ema_step_averages_parameters_and_copies_buffers():
    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = new_ema(g)
    before = [p.detach().clone() for p in ema.parameters()]
    with torch.no_grad():
        for p in g.parameters():
            p.add_(1.0)
    g.train()(torch.randn(8, 3))  # moves the running statistics
    update_ema(ema, g, decay=0.9, step=1000)
    for old, new, now in zip(before, ema.parameters(), g.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * now)
    torch.testing.assert_close(ema[1].running_mean, g[1].running_mean, rtol=0, atol=0)
    assert not any(p.requires_grad for p in ema.parameters())


def test_ema_checkpoints_resume_exactly_and_are_what_scores_sample(tmp_path: Path):
    whole = run(tiny_config(ema_decay=0.9), tmp_path / "whole")
    run(tiny_config(ema_decay=0.9, steps=3), tmp_path / "split")
    resumed = run(tiny_config(ema_decay=0.9), tmp_path / "split")
    assert [e.generator_ema_sha256 for e in resumed.checkpoints] == [e.generator_ema_sha256 for e in whole.checkpoints]
    assert resumed.latest.generator_sha256 == whole.latest.generator_sha256
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    ema, raw = (load_generator(whole, whole.latest, weights=w)(z) for w in ("ema", "raw"))
    assert not torch.equal(ema, raw)
    assert sampled_weights(whole, "ema") == "ema" and sampled_weights(whole, "raw") == "raw"
    plain = run(tiny_config(), tmp_path / "plain")
    assert plain.latest.generator_ema is None and sampled_weights(plain, "ema") == "raw"
    assert "generator_ema" not in plain.to_dict()["checkpoints"][0]  # runs without it store what they always did

# -- DiffAugment and ADA -----------------------------------------------------------------------------------------


def images(n=6, side=8, channels=1, seed=0):
    return torch.rand(n, channels, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_translation_moves_each_image_whole_and_pads_with_background():
    x = images()
    out = translation(x, torch.Generator().manual_seed(1))
    for before, after in zip(x, out):  # some shift (dy, dx) within 1/8 of the side reproduces the image
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if torch.equal(after, shifted(before, dy, dx))]
        assert matches, "not a translation by at most one pixel (1/8 of 8)"


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    padded = torch.nn.functional.pad(image, (1, 1, 1, 1), value=-1.0)
    side = image.shape[-1]
    return padded[:, 1 + dy:1 + dy + side, 1 + dx:1 + dx + side]


def test_cutout_zeroes_one_square_of_half_the_side_clipped_at_the_border():
    x = images(n=50) + 5.0  # no pixel is 0 before
    out = cutout(x, torch.Generator().manual_seed(2))
    for image in out:
        rows, cols = torch.nonzero(image[0] == 0, as_tuple=True)
        assert 0 < len(rows) <= 16 and len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert rows.max() - rows.min() + 1 <= 4 and cols.max() - cols.min() + 1 <= 4


def test_augmentation_is_differentiable_and_ada_probability_gates_it():
    x = images().requires_grad_(True)
    out = augment(x, ["color", "translation", "cutout"], torch.Generator().manual_seed(3))
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.abs().sum() > 0  # G's gradient flows through what D sees
    never = augment(x, ["color", "translation"], torch.Generator().manual_seed(4), p=torch.tensor(0.0))
    torch.testing.assert_close(never, x, rtol=0, atol=0)
    always = augment(x, ["color", "translation"], torch.Generator().manual_seed(4), p=torch.tensor(1.0))
    torch.testing.assert_close(always, augment(x, ["color", "translation"], torch.Generator().manual_seed(4)))


def test_ada_moves_p_by_the_images_seen_toward_the_target():
    step = 64 * ADA_INTERVAL / ADA_IMAGES
    p = torch.tensor(0.5)
    torch.testing.assert_close(ada_adjust(p, torch.tensor(0.9), 0.6, 64), torch.tensor(0.5 + step))  # overfitting
    torch.testing.assert_close(ada_adjust(p, torch.tensor(0.1), 0.6, 64), torch.tensor(0.5 - step))
    assert ada_adjust(torch.tensor(0.0), torch.tensor(-1.0), 0.6, 64) == 0.0  # clamped


def test_ada_p_is_saved_and_resumed_exactly(tmp_path: Path):
    options = dict(augment=["translation", "cutout"], ada_target=0.6)
    whole = run(tiny_config(**options), tmp_path / "whole")
    run(tiny_config(steps=3, **options), tmp_path / "split")
    resumed = run(tiny_config(**options), tmp_path / "split")
    assert resumed.latest.generator_sha256 == whole.latest.generator_sha256
    saved = [torch.load(m.path(m.latest.state), weights_only=True) for m in (whole, resumed)]
    for key in ("ada_p", "ada_signs"):
        torch.testing.assert_close(saved[0][key], saved[1][key], rtol=0, atol=0)


def test_ada_follows_the_sign_of_d_on_reals_every_interval():
    from gan_assets.core.training.loop import follow_ada

    config = tiny_config(augment=["translation"], ada_target=0.6)
    state = type("State", (), {"ada_p": torch.tensor(0.0), "ada_signs": torch.zeros(2)})()
    for d_index in range(ADA_INTERVAL):  # D is sure of every real: E[sign D(x)] = 1 > 0.6
        follow_ada(state, torch.ones(8), config.training, d_index)
    assert float(state.ada_p) == pytest.approx(8 * ADA_INTERVAL / ADA_IMAGES)
    assert state.ada_signs.tolist() == [0.0, 0.0]  # the window starts again

# -- spectral norm, R1, hinge, packing ---------------------------------------------------------------------------


def test_spectral_norm_holds_each_weight_near_unit_largest_singular_value():
    model = parse_experiment({**TINY, "dataset": {"image_size": 16}, "model": {**TINY["model"], "spectral_norm": True}})
    d = build_discriminator(model.model, (1, 16, 16), 4)
    dcgan_init_(d)
    x = images(n=16, side=16)
    for _ in range(30):  # one power iteration per training forward
        d.train().features(x)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    for m in convs:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_r1_is_half_gamma_times_the_squared_input_gradient_weighted_by_its_interval():
    config = tiny_config(r1_gamma=10.0, r1_every=4)
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    x = torch.randn(5, 1, 2, 2, requires_grad=True)
    logits = x.flatten(1) @ w  # ∇ₓ l = w for every sample
    assert float(r1_penalty(logits, x, config.training)) == pytest.approx(0.5 * 10.0 * 4 * float(w.square().sum()))


def test_the_hinge_game_has_margins():
    logits = torch.tensor([-2.0, 0.5, 3.0])
    assert float(discriminator_hinge_half(logits, real=True)) == pytest.approx((3.0 + 0.5 + 0.0) / 3)
    assert float(discriminator_hinge_half(logits, real=False)) == pytest.approx((0.0 + 1.5 + 4.0) / 3)
    assert float(generator_loss("hinge", logits)) == pytest.approx(-0.5)


def test_a_packed_d_judges_consecutive_samples_as_one():
    torch.manual_seed(0)
    packed = Discriminator(4, 2, 16, "batch")
    packed.pack = 2
    x = images(n=8, side=16)
    single = copy.deepcopy(packed)
    single.pack = 1  # the same weights, given the packs by hand
    logits = packed.train()(x)
    assert logits.shape == (4,)
    torch.testing.assert_close(logits, single.train()(x.reshape(4, 2, 16, 16)))


def test_packing_with_a_reference_batch_packs_the_reference_too():
    torch.manual_seed(0)
    d = Discriminator(4, 3, 16, "virtual")
    d.pack = 3
    d.set_reference(images(n=6, side=16))
    assert d(images(n=9, side=16, seed=1)).shape == (3,)


@pytest.mark.parametrize("options", [
    {"training": {"augment": ["color", "translation", "cutout"]}},
    {"training": {"r1_gamma": 1.0, "r1_every": 2}},
    {"training": {"generator_loss": "hinge", "label_smoothing": 0.0}},
    {"model": {"spectral_norm": True, "pack": 2}},
    {"model": {"norm": "virtual", "pack": 2}, "training": {"update": "simultaneous", "ema_decay": 0.9}},
    {"model": {"conditional": True, "auxiliary_classifier": True},
     "training": {"augment": ["translation"], "ada_target": 0.6, "r1_gamma": 1.0, "ema_decay": 0.9}},
])
def test_each_option_trains_with_the_others_and_resumes_bit_identically(tmp_path: Path, options):
    def config(steps):
        raw = copy.deepcopy(TINY)
        raw["dataset"] = {"image_size": 16}
        for section, values in options.items():
            raw.setdefault(section, {}).update(values)
        raw["training"]["steps"] = steps
        return parse_experiment(raw)

    whole = run(config(6), tmp_path / "whole")
    run(config(3), tmp_path / "split")
    resumed = run(config(6), tmp_path / "split")
    assert resumed.latest.generator_sha256 == whole.latest.generator_sha256
    assert resumed.latest.discriminator_sha256 == whole.latest.discriminator_sha256
    history = whole.history_frame()
    assert history[["loss_d", "loss_g"]].notna().all().all()


@pytest.mark.parametrize("raw, fields", [
    ({"model": {"pack": 2, "conditional": True}}, ("model.pack", "model.conditional")),
    ({"model": {"pack": 3}}, ("training.batch_size", "model.pack")),
    ({"model": {"pack": 3, "norm": "reference"}, "training": {"batch_size": 9}}, ("reference_batch.size", "model.pack")),
    ({"training": {"generator_loss": "hinge"}}, ("training.label_smoothing", "'hinge'")),
    ({"training": {"ada_target": 0.6}}, ("training.ada_target", "training.augment")),
    ({"dataset": {"source": "ring8"}, "training": {"augment": ["cutout"]}}, ("training.augment", "dataset.source")),
])
def test_a_combination_that_cannot_work_names_both_fields(raw, fields):
    with pytest.raises(ConfigError) as failure:
        parse_experiment(raw)
    for field in fields:
        assert field in str(failure.value)


def test_the_options_at_their_defaults_leave_every_existing_hash_alone():
    config = parse_experiment({})
    dumped = {**config.model.model_dump(mode="json"), **config.training.model_dump(mode="json"),
              **config.evaluation.model_dump(mode="json")}
    for name in ("spectral_norm", "pack", "ema_decay", "augment", "ada_target", "r1_gamma", "r1_every", "generator"):
        assert name not in dumped
    assert parse_experiment({"training": {"ema_decay": 0.999}}).training.model_dump()["ema_decay"] == 0.999
