"""The stacked seed trainer (issue 13): S seeds at once equal S runs of the project's own loop, step for step;
a short run covers more of ring8; the benchmark's table writer."""

import sys
from pathlib import Path

import pytest
import torch

from gan_assets.core.seed_stack import (
    MaxoutDiscriminator,
    StackConfig,
    build_players,
    build_stack,
    evaluate,
    seed_data,
    single_states,
    stacked_step,
    train_single,
    train_stack,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_modes import suite, write_results  # noqa: E402

from gan_assets.core.mode_benchmark import (  # noqa: E402
    PUBLISHED,
    markdown_table,
    mean_sem,
    meets_target,
    read_results,
    summarise,
)

TINY = StackConfig(seeds=(0, 1, 2), steps=3, batch_size=16, z_dim=2, g_width=16, g_layers=3, d_width=8, pieces=3,
                   num_samples=400, reference_size=8, lr_g=1e-3, lr_d=1e-3)


def _floats(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items() if v is not None and v.is_floating_point()}


@pytest.mark.parametrize("changes", [
    {},
    {"update": "simultaneous", "generator_loss": "minimax"},
    {"norm": "reference", "d_steps": 2, "label_smoothing": 0.1},
    {"norm": "virtual", "labels": True, "generator_loss": "maximum_likelihood"},
    {"norm": "none", "labels": True, "update": "simultaneous"},
])
def test_stacked_equals_separate_runs_of_the_project_loop(changes):
    config = TINY.with_(**changes)
    data = seed_data(config)
    stack = build_stack(config, data)
    for _ in range(3):
        stacked_step(stack)
    states, datas = single_states(config, data)
    train_single(states, datas, config, 3)  # gan_assets.core.training_loop's step function, one seed at a time
    fresh = [build_players(config, seed, data.reference_z[s], data.reference_labels[s])
             for s, seed in enumerate(config.seeds)]
    gs = stack.generator.unstack([g for g, _ in fresh])
    ds = stack.discriminator.unstack([d for _, d in fresh])
    for state, g, d in zip(states, gs, ds):
        for mine, theirs in ((g, state.generator), (d, state.discriminator)):
            ours, ref = _floats(mine), _floats(theirs)
            assert ours.keys() == ref.keys()
            for name in ref:
                torch.testing.assert_close(ours[name], ref[name], msg=lambda m, n=name: f"{n}: {m}")
    # and the seeds really differ (their own init, data and z streams)
    assert not torch.equal(stack.generator.params["body.0.weight"][0], stack.generator.params["body.0.weight"][1])


def test_maxout_discriminator_is_pacgans():
    d = MaxoutDiscriminator(width=200, pieces=5, layers=3)
    assert [m.linear.out_features for m in d.body] == [1000, 1000, 1000]
    assert d(torch.randn(7, 2)).shape == (7,)


def test_a_short_run_covers_more_of_ring8():
    config = StackConfig(seeds=(0, 1), steps=400, batch_size=128, g_width=64, d_width=32, pieces=3,
                         num_samples=4000, lr_g=2e-3, lr_d=2e-3, beta1=0.5)
    torch.set_num_threads(1)
    stack = build_stack(config)
    before = evaluate(stack, n=1000)
    train_stack(stack)
    after = evaluate(stack, n=1000)
    for b, a in zip(before, after):
        assert b["modes"] == 0 and a["modes"] >= 3  # from none of the 8 modes to several, in seconds
        assert a["hq_fraction"] > b["hq_fraction"]
        assert a["reverse_kl"] < b["reverse_kl"]  # below log 8, the total-collapse value


def test_table_puts_configurations_beside_the_published_rows():
    seeds = [0, 1]
    ring = summarise("ring8", "ring8/pacgan", seeds,
                     [{"modes": 8, "hq_fraction": 0.99, "reverse_kl": 0.01},
                      {"modes": 8, "hq_fraction": 0.97, "reverse_kl": 0.01}], 100, 12.0)
    grid = summarise("grid25", "grid25/pacgan", seeds,
                     [{"modes": 20, "hq_fraction": 0.9, "reverse_kl": 0.2},
                      {"modes": 24, "hq_fraction": 0.8, "reverse_kl": 0.4}], 100, 12.0)
    assert ring["modes"] == {"mean": 8.0, "sem": 0.0}
    assert grid["modes"]["mean"] == 22.0 and grid["modes"]["sem"] == pytest.approx(2.0)
    assert set(ring) == {"dataset", "config", "seeds", "modes", "hq_fraction", "reverse_kl", "steps", "seconds"}
    table = markdown_table([ring, grid])
    lines = table.splitlines()
    assert lines[0].startswith("| dataset | configuration | modes | high quality | reverse KL")
    assert "| ring8 | published GAN (PacGAN Table 1, ~400k steps) | 6.3 ± 0.5 | 98.2% | 0.45 |" in table
    assert "| grid25 | published PacGAN4 (PacGAN Table 1, ~400k steps) | 24.8 ± 0.2 | 93.6% | 0.04 |" in table
    assert "| ring8 | ring8/pacgan | 8.0 ± 0.0 | 98.0 ± 1.0% | 0.010 ± 0.000 | 100 | 12 | met |" in table
    assert "| grid25 | grid25/pacgan | 22.0 ± 2.0 | 85.0 ± 5.0% |" in table and table.count("not met") == 1
    # published rows come before the dataset's own configurations
    assert lines.index(next(l for l in lines if "ring8/pacgan" in l)) > lines.index(
        next(l for l in lines if "ring8 | published PacGAN4" in l))
    assert not meets_target(grid) and meets_target(ring)
    assert set(PUBLISHED) == {"ring8", "grid25"}


def test_a_subset_run_replaces_its_own_rows_and_keeps_the_others(tmp_path):
    def row(name: str, hq: float) -> dict:
        return summarise("ring8", name, [0], [{"modes": 8, "hq_fraction": hq, "reverse_kl": 0.01}], 10, 1.0)

    write_results(tmp_path, [row("ring8/base", 0.5), row("ring8/labels", 0.6)])
    write_results(tmp_path, [row("ring8/labels", 0.9)])  # `--only ring8/labels` run again
    rows = read_results(tmp_path / "results.jsonl")
    assert [(r["config"], r["hq_fraction"]["mean"]) for r in rows] == [("ring8/base", 0.5), ("ring8/labels", 0.9)]
    assert (tmp_path / "table.md").read_text() == markdown_table(rows)


def test_mean_sem_and_the_suite():
    assert mean_sem([1.0]) == {"mean": 1.0, "sem": 0.0}
    assert mean_sem([1.0, 3.0])["sem"] == pytest.approx(1.0)
    configs = suite(5)
    assert {"ring8/pacgan", "grid25/virtual_bn", "ring8/labels", "grid25/d_steps5", "ring8/recommended",
            "grid25/unlabelled_long"} <= set(configs)
    assert configs["ring8/pacgan"].g_width == 400 and configs["ring8/pacgan"].batch_size == 100  # PacGAN's own
    assert configs["grid25/recommended"].labels and not configs["grid25/base"].labels
    assert all(c.seeds == (0, 1, 2, 3, 4) for c in configs.values())
    assert {c.generator_loss for c in configs.values()} == {"non_saturating", "minimax", "maximum_likelihood"}
