"""The mode-collapse benchmark (benchmarks/bench_modes.py, benchmarks/modes_suite.py): each seed trains through
the project's own step functions, deterministically, with its lr decayed per step; rows, table and scatter."""

import json
import math
import statistics
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_modes  # noqa: E402
from modes_suite import (  # noqa: E402
    EVAL_SEED_OFFSET,
    MaxoutDiscriminator,
    ModesConfig,
    build_seed,
    lr_factor,
    sample,
    score,
    train_seed,
)

from gan_assets.core.comparison.mode_benchmark import markdown_table, read_results  # noqa: E402
from gan_assets.core.data.sources.mixtures import mixture_modes  # noqa: E402
from gan_assets.core.training.loop import TrainingCallbacks, train  # noqa: E402

TINY = ModesConfig(seeds=(0, 1), steps=4, batch_size=16, g_width=16, g_layers=3, d_width=8, pieces=3,
                   num_samples=400, reference_size=8, lr_g=1e-3, lr_d=1e-3)


def _weights(run) -> dict[str, torch.Tensor]:
    modules = {"g": run.state.generator, "d": run.state.discriminator}
    return {f"{p}.{k}": v for p, m in modules.items() for k, v in m.state_dict().items()
            if v is not None and v.is_floating_point()}


def _trained(config: ModesConfig, seed: int):
    run = build_seed(config, seed)
    train_seed(run)
    return run


@pytest.mark.parametrize("changes", [
    {},
    {"norm": "reference", "labels": True, "update": "simultaneous", "lr_decay_to": 0.1},
    {"norm": "virtual", "d_steps": 2, "generator_loss": "minimax"},
    {"pack": 2, "spectral_norm": True, "ema_decay": 0.9, "r1_gamma": 0.5, "r1_every": 2, "generator_loss": "hinge"},
])
def test_a_seed_trains_to_the_same_weights_every_time(changes):
    config = TINY.with_(**changes)
    first, again, other = _trained(config, 0), _trained(config, 0), _trained(config, 1)
    assert first.state.step == again.state.step == config.steps
    ours, theirs = _weights(first), _weights(again)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    assert torch.equal(sample(first, 50), sample(again, 50))
    # a seed is its own init, data and z stream
    assert not torch.equal(ours["g.body.0.weight"], _weights(other)["g.body.0.weight"])


def test_without_decay_it_is_the_projects_train(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setenv("GAN_TORCH_THREADS", str(threads))  # `train` follows the load unless this is set
    mine = _trained(TINY, 1)
    theirs = build_seed(TINY, 1)
    report = train(theirs.state, theirs.data, TINY.training(), TrainingCallbacks())
    assert report.steps_done == TINY.steps and torch.get_num_threads() == threads
    ours, ref = _weights(mine), _weights(theirs)
    for name in ref:
        assert torch.equal(ours[name], ref[name]), name


def test_the_lr_falls_linearly_to_its_final_share_at_the_last_step():
    config = TINY.with_(steps=5, lr_g=2e-3, lr_decay_to=0.1)
    assert [lr_factor(config, s) for s in range(5)] == pytest.approx([1.0, 0.775, 0.55, 0.325, 0.1])
    run = _trained(config, 0)
    assert run.state.opt_g.param_groups[0]["lr"] == pytest.approx(2e-3 * 0.1)
    assert run.state.opt_d.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.1)
    assert lr_factor(TINY, 3) == 1.0  # the default keeps PacGAN's constant lr


def test_a_spent_budget_stops_after_the_step_in_progress():
    run = build_seed(TINY, 0)
    seconds = train_seed(run, seconds_budget=0.0)
    assert run.state.step == 1 and seconds > 0
    train_seed(run, until=3)
    assert run.state.step == 3


def test_score_is_pacgans_protocol_on_exact_points():
    centers, _ = mixture_modes("ring8")
    assert score(centers.float(), "ring8") == {"modes": 8.0, "hq_fraction": 1.0, "reverse_kl": 0.0}
    collapsed = score(torch.cat([centers[:1].repeat(9, 1), torch.full((1, 2), 5.0)]).float(), "ring8")
    assert collapsed == {"modes": 1.0, "hq_fraction": pytest.approx(0.9), "reverse_kl": pytest.approx(math.log(8))}


def test_maxout_discriminator_is_pacgans():
    d = MaxoutDiscriminator(width=200, pieces=5, layers=3)
    assert [m.linear.out_features for m in d.body] == [1000, 1000, 1000]
    assert d(torch.randn(7, 2)).shape == (7,)


def test_a_configuration_row_summarises_its_seeds(tmp_path):
    row = bench_modes.run_config("ring8/tiny", TINY, None, None, tmp_path)
    assert set(row) == {"dataset", "config", "seeds", "modes", "hq_fraction", "reverse_kl", "steps", "seconds",
                        "per_seed"}
    assert row["seeds"] == [0, 1] and row["steps"] == TINY.steps and row["dataset"] == "ring8"
    # each seed's scores are those of that seed trained on its own
    assert row["per_seed"] == [score(sample(_trained(TINY, seed)), "ring8") for seed in TINY.seeds]
    for metric in ("modes", "hq_fraction", "reverse_kl"):
        values = [r[metric] for r in row["per_seed"]]
        assert row[metric]["mean"] == pytest.approx(statistics.fmean(values))
        assert row[metric]["sem"] == pytest.approx(abs(values[0] - values[1]) / 2)  # two seeds: |a - b| / 2
    assert (tmp_path / "ring8-tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_suite_names_every_choice_on_both_mixtures(capsys):
    configs = bench_modes.suite(2)
    choices = ["pacgan", *bench_modes.VARIANTS, "recommended", "unlabelled_long", "unlabelled_options"]
    assert set(configs) == {f"{d}/{c}" for d in ("ring8", "grid25") for c in choices} and len(configs) == 2 * len(choices)
    pacgan = configs["ring8/pacgan"]
    assert (pacgan.g_width, pacgan.d_width, pacgan.pieces, pacgan.batch_size, pacgan.lr_g, pacgan.beta1) == (
        400, 200, 5, 100, 1e-4, 0.8)
    assert configs["grid25/recommended"].labels and configs["grid25/recommended"].steps == 8000
    assert not configs["grid25/base"].labels and configs["grid25/base"].lr_decay_to == 0.02
    assert all(c.seeds == (0, 1) for c in configs.values())
    assert bench_modes.main(["--list", "--only", "*/recommended", "ring8/no_bn"]) == []
    assert capsys.readouterr().out.split() == ["ring8/no_bn", "ring8/recommended", "grid25/recommended"]


def test_main_writes_the_rows_the_table_and_a_scatter(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        rows = bench_modes.main(["--only", "ring8/base", "--steps", "3", "--seeds", "2", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert [r["config"] for r in rows] == ["ring8/base"] and rows[0]["steps"] == 3
    assert read_results(tmp_path / "results.jsonl") == rows
    assert (tmp_path / "table.md").read_text() == markdown_table(rows)
    assert (tmp_path / "ring8-base.png").stat().st_size > 1000
    printed = json.loads(capsys.readouterr().out)
    assert printed == {k: v for k, v in rows[0].items() if k != "per_seed"}


def test_speed_reports_both_configurations():
    row = bench_modes.speed(2, 1)
    assert set(row) == {"speed", "seeds", "steps", "threads", "pacgan_seed_steps_per_s", "pacgan_config_steps_per_s",
                        "base_seed_steps_per_s", "base_config_steps_per_s", "base_samples_per_s_over_pacgan"}
    assert row["pacgan_seed_steps_per_s"] == row["pacgan_config_steps_per_s"]  # one seed
    # base's batch is 256 to PacGAN's 100
    ratio = 2.56 * row["base_config_steps_per_s"] / row["pacgan_config_steps_per_s"]
    assert row["base_samples_per_s_over_pacgan"] == pytest.approx(ratio, rel=0.05)


def test_the_options_beyond_the_tutorial_reach_the_seeds_players():
    run = build_seed(TINY.with_(pack=4, spectral_norm=True, ema_decay=0.9), 0)
    d = run.state.discriminator
    assert d.pack == 4 and d.body[0].linear.in_features == 8  # four 2-D points per judgement
    assert torch.nn.utils.parametrize.is_parametrized(d.body[0].linear, "weight")
    train_seed(run)
    ema = run.state.ema
    assert ema is not None and not torch.equal(sample(run, 20), run.state.generator.eval()(
        torch.randn(20, TINY.z_dim, generator=torch.Generator().manual_seed(EVAL_SEED_OFFSET))))
