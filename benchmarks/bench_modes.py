"""Mode-collapse benchmark on PacGAN's 2-D mixtures (issue 13): ring8 and grid25 x the tutorial's choices.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_modes.py [--only 'ring8/*'] [--steps N]
          [--seconds-budget S] [--seeds 5] [--out $GAN_STORAGE_ROOT/bench_modes, data/bench_modes by default]
      ... --list          the configuration names
      ... --speed         steps/s of the project's loop for PacGAN's configuration and for `base`, in one run

Every configuration trains each of its seeds (a field of the configuration, 0..4 by default) in turn with the
project's own step functions (benchmarks/modes_suite.py), is scored with the project's `modes` metric on 2,500
samples per seed (PacGAN's protocol), and ends as one JSON line: dataset, config, seeds, modes / hq_fraction /
reverse_kl as {"mean", "sem"} over seeds, steps, seconds (training, all seeds). `--seconds-budget` is the
configuration's, shared equally by its seeds. `--out` gets results.jsonl (rewritten after each configuration,
keeping the rows of configurations this run did not train; the leaderboard reads it), table.md (each
configuration beside PacGAN's Table 1 rows) and one scatter PNG per configuration (a panel per seed,
high-quality samples blue, the others orange, over the true means).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np  # noqa: E402
import torch  # noqa: E402
from modes_suite import ModesConfig, build_seed, sample, score, train_seed  # noqa: E402

from gan_assets.core.comparison.mode_benchmark import DATASETS, RESULTS_FILE, markdown_table, read_results, summarise  # noqa: E402
from gan_assets.core.data.sources.mixtures import mixture_modes  # noqa: E402
from gan_assets.core.gallery.plots import render_scatter_panels  # noqa: E402
from gan_assets.core.png import save_png  # noqa: E402
from gan_assets.core.storage import write_bytes_atomic  # noqa: E402

# PacGAN's protocol (G 2 -> 4x400 ReLU+BN -> 2, D 3 maxout x 200 x 5, Adam 1e-4 / 0.8, batch 100) is the
# ModesConfig defaults: `pacgan` trains it as published, for the steps given here instead of ~400k.
PACGAN: dict = {"steps": 2000}
# The tuned base every tutorial choice is varied from, one at a time, at one budget of 2,000 steps: narrower
# networks (G 4 x 128, D 3 maxout x 64 x 5: ~5x cheaper per sample than PacGAN's), batch 256, Adam 1e-3 /
# beta1 0.5 with the lr decayed linearly to 2% of itself (the decay is what lets the samples settle into
# the 3-std discs).
BASE: dict = {"g_width": 128, "d_width": 64, "batch_size": 256, "lr_g": 1e-3, "lr_d": 1e-3, "beta1": 0.5,
              "lr_decay_to": 0.02, "steps": 2000}
VARIANTS: dict[str, dict] = {
    "base": {},
    "minimax": {"generator_loss": "minimax"},
    "maximum_likelihood": {"generator_loss": "maximum_likelihood"},
    "smoothing": {"label_smoothing": 0.1},
    "reference_bn": {"norm": "reference"},
    "virtual_bn": {"norm": "virtual"},
    "no_bn": {"norm": "none"},
    "d_steps5": {"d_steps": 5},
    "simultaneous": {"update": "simultaneous"},
    "labels": {"labels": True},
    # beyond the tutorial, without labels (issue 26), each alone on `base`
    "ema": {"ema_decay": 0.995},
    "pack2": {"pack": 2},
    "pack4": {"pack": 4},
    "spectral_norm": {"spectral_norm": True},
    "r1": {"r1_gamma": 0.5},
    "hinge": {"generator_loss": "hinge"},
}
# Issue 13's recommended configuration: the base with labels (§4.1: G is asked for a mode index, D scores it
# by projection), trained until every seed's samples sit in their discs: 4,000 steps on ring8, 8,000 on
# grid25 (25 classes take longer to sort out). Without labels the base trained longer comes closest
# (`unlabelled_long`); `make bench-modes` and the README give both.
RECOMMENDED: dict[str, dict] = {"ring8": {"labels": True, "steps": 4000}, "grid25": {"labels": True, "steps": 8000}}
UNLABELLED_LONG: dict[str, dict] = {"ring8": {"steps": 12000}, "grid25": {"steps": 20000}}
# Issue 26: the screening's best option per mixture without labels (3 seeds, 2,000 steps: packing 2 on ring8 for its
# reverse KL, R1 on grid25 for its modes), trained long within 30 CPU-minutes for 5 seeds.
UNLABELLED_OPTIONS: dict[str, dict] = {"ring8": {"pack": 2, "steps": 12000}, "grid25": {"r1_gamma": 0.5, "steps": 16000}}
WARMUP_STEPS = 10  # `--speed`: steps each seed takes before the clock starts (allocations, oneDNN's kernel picks)


def suite(num_seeds: int = 5) -> dict[str, ModesConfig]:
    seeds = tuple(range(num_seeds))
    configs = {}
    for dataset in DATASETS:
        protocol = ModesConfig(dataset=dataset, seeds=seeds)
        configs[f"{dataset}/pacgan"] = protocol.with_(**PACGAN)
        base = protocol.with_(**BASE)
        for name, changes in VARIANTS.items():
            configs[f"{dataset}/{name}"] = base.with_(**changes)
        configs[f"{dataset}/recommended"] = base.with_(**RECOMMENDED[dataset])
        configs[f"{dataset}/unlabelled_long"] = base.with_(**UNLABELLED_LONG[dataset])
        configs[f"{dataset}/unlabelled_options"] = base.with_(**UNLABELLED_OPTIONS[dataset])
    return configs


def train_seeds(config: ModesConfig, seconds_budget: float | None) -> tuple[list[dict], list[np.ndarray], int, float]:
    """Each seed in turn: trained, sampled, scored, then dropped (only its samples are kept, for the scatter).
    Returns (per-seed scores, per-seed samples, the fewest steps any seed reached, training seconds)."""
    per_seed_budget = seconds_budget / len(config.seeds) if seconds_budget is not None else None
    scores, panels, steps, seconds = [], [], [], 0.0
    for seed in config.seeds:
        run = build_seed(config, seed)
        seconds += train_seed(run, seconds_budget=per_seed_budget)
        points = sample(run)
        scores.append(score(points, config.dataset))
        panels.append(points.numpy())
        steps.append(run.state.step)
    return scores, panels, min(steps), seconds


def scatter(config: ModesConfig, name: str, panels: list[np.ndarray], per_seed: list[dict]) -> np.ndarray:
    centers, std = mixture_modes(config.dataset)
    titles = [f"{name} seed {s}: {int(r['modes'])} modes" for s, r in zip(config.seeds, per_seed)]
    return render_scatter_panels(panels, centers.numpy(), titles, std=std)


def run_config(name: str, config: ModesConfig, steps: int | None, seconds_budget: float | None,
               out: Path | None) -> dict:
    config = config.with_(steps=steps) if steps else config
    per_seed, panels, reached, seconds = train_seeds(config, seconds_budget)
    row = summarise(config.dataset, name, list(config.seeds), per_seed, reached, seconds)
    row["per_seed"] = per_seed
    if out is not None:
        save_png(scatter(config, name, panels, per_seed), out / f"{name.replace('/', '-')}.png")
    return row


def merged_results(path: Path, rows: list[dict]) -> list[dict]:
    """The earlier results with this run's configurations replaced, so a subset run (`--only`) adds to the
    table (and the leaderboard's copy of it) instead of erasing the other configurations."""
    earlier = read_results(path) if path.exists() else []
    fresh = {row["config"] for row in rows}
    return [row for row in earlier if row["config"] not in fresh] + rows


def write_results(out: Path, rows: list[dict]) -> None:
    kept = merged_results(out / RESULTS_FILE.name, rows)
    write_bytes_atomic("".join(json.dumps(row) + "\n" for row in kept).encode(), out / RESULTS_FILE.name)
    write_bytes_atomic(markdown_table(kept).encode(), out / "table.md")


def timed_steps(config: ModesConfig, steps: int) -> float:
    """Seconds for `steps` steps of every seed of `config`, one seed after another, each after its warm-up."""
    seconds = 0.0
    for seed in config.seeds:
        run = build_seed(config, seed)
        train_seed(run, until=WARMUP_STEPS)
        seconds += train_seed(run, until=WARMUP_STEPS + steps)
    return seconds


def speed(steps: int, num_seeds: int) -> dict:
    """steps/s of the project's loop for num_seeds seeds of PacGAN's configuration and of `base`, in one run,
    and how many more samples per second `base` trains on (its batch is 256 to PacGAN's 100)."""
    # steps far beyond the run: the lr stays where it starts, as it does early in a real run
    pacgan = ModesConfig(seeds=tuple(range(num_seeds)), steps=10**9)
    base = pacgan.with_(**{**BASE, "steps": 10**9})
    pacgan_seconds, base_seconds = timed_steps(pacgan, steps), timed_steps(base, steps)
    return {"speed": True, "seeds": num_seeds, "steps": steps, "threads": torch.get_num_threads(),
            "pacgan_seed_steps_per_s": round(num_seeds * steps / pacgan_seconds, 2),
            "pacgan_config_steps_per_s": round(steps / pacgan_seconds, 2),
            "base_seed_steps_per_s": round(num_seeds * steps / base_seconds, 2),
            "base_config_steps_per_s": round(steps / base_seconds, 2),
            "base_samples_per_s_over_pacgan": round(base.batch_size * pacgan_seconds
                                                    / (pacgan.batch_size * base_seconds), 2)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="configuration names or globs (ring8/*, */recommended)")
    parser.add_argument("--steps", type=int, help="generator steps per configuration (default: its own)")
    parser.add_argument("--seconds-budget", type=float,
                        help="stop each configuration's training after this (shared equally by its seeds)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    # where the leaderboard looks: the storage root's bench_modes/ (GAN_STORAGE_ROOT, `data` by default)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("GAN_STORAGE_ROOT", "data")) / RESULTS_FILE.parent)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--speed", action="store_true", help="measure steps/s, PacGAN's configuration and base")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.speed:
        row = speed(args.steps or 300, args.seeds)
        print(json.dumps(row))
        return [row]
    configs = suite(args.seeds)
    if args.only:
        configs = {n: c for n, c in configs.items() if any(fnmatch.fnmatchcase(n, p) for p in args.only)}
        if not configs:
            parser.error(f"--only {args.only} matches none of {sorted(suite(args.seeds))}")
    if args.list:
        print("\n".join(configs))
        return []
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, config in configs.items():
        started = time.perf_counter()
        rows.append(run_config(name, config, args.steps, args.seconds_budget, args.out))
        print(f"# {name}: {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
        write_results(args.out, rows)  # after each configuration: a long suite stopped midway keeps its rows
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "per_seed"}))
    return rows


if __name__ == "__main__":
    main()
