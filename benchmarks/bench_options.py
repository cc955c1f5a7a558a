"""The options beyond the tutorial, measured on digits: each alone on top of the default experiment, over seeds.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_options.py --variants base ema diffaug \\
          [--seeds 0 1 2] [--steps 10000] [--unconditional] [--threads 1]
      OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_options.py --cost [--steps 60]

Each run trains `experiments/digits-dcgan.yaml` (or its unconditional form) with one variant's overrides, scores
every checkpoint exactly as `checkpoint_scores` does (one evaluator for all: the default experiment's, seed 0) and
prints one JSON line: the best checkpoint's FD, the real floor's FD, their ratio (what `make run` is judged by),
class coverage, precision, recall and `nn_ratio` (far below 1: copies of training images) at the best checkpoint,
and training seconds. Last, a summary line per variant: the median, minimum
and maximum ratio over the seeds and whether every seed covered 10/10 classes.

`--cost` instead times each variant's training step beside the base's, interleaved in rounds on the same data (the
VM's speed moves between runs; only these side-by-side ratios count): `step_cost` = variant's seconds per step over
the base's, the median over rounds.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
import torch  # noqa: E402

from gan_assets.core.config import ExperimentConfig, load_experiment, parse_experiment  # noqa: E402
from gan_assets.core.data.images import rows_by_id  # noqa: E402
from gan_assets.core.data.reference import select_reference  # noqa: E402
from gan_assets.core.data.sources import load_dataset  # noqa: E402
from gan_assets.core.evaluation.classifier import train_classifier  # noqa: E402
from gan_assets.core.evaluation.scoring import best_row, real_floor_row, score_checkpoints  # noqa: E402
from gan_assets.core.training.loop import TrainingCallbacks, train  # noqa: E402
from gan_assets.core.training.run import RunInputs, _device_data, _fresh_state, train_run  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1] / "experiments" / "digits-dcgan.yaml"
# name → overrides of the default experiment, by section. Each option's value is its paper's usual one.
VARIANTS: dict[str, dict] = {
    "base": {},
    "ema": {"training": {"ema_decay": 0.999}},
    "diffaug": {"training": {"augment": ["translation", "cutout"]}},  # the paper's policy for grey images
    "diffaug_color": {"training": {"augment": ["color", "translation", "cutout"]}},
    "ada": {"training": {"augment": ["translation", "cutout"], "ada_target": 0.6}},
    "spectral_norm": {"model": {"spectral_norm": True}},
    "r1": {"training": {"r1_gamma": 0.1}},
    "hinge": {"training": {"generator_loss": "hinge", "label_smoothing": 0.0}},
    "ema_diffaug": {"training": {"ema_decay": 0.999, "augment": ["translation", "cutout"]}},
    "ema_diffaug_r1": {"training": {"ema_decay": 0.999, "augment": ["translation", "cutout"], "r1_gamma": 0.1}},
}


def variant_config(name: str, seed: int, steps: int, unconditional: bool) -> ExperimentConfig:
    raw = load_experiment(DEFAULT).model_dump(mode="json")
    raw["seed"] = seed
    raw["training"].update(steps=steps, checkpoint_every=max(1, steps // 5))
    if unconditional:
        raw["model"]["conditional"] = False
    for section, values in VARIANTS[name].items():
        raw[section] = {**raw.get(section, {}), **copy.deepcopy(values)}
    return parse_experiment(raw, origin=f"{DEFAULT} + {name}")


def run_inputs(config: ExperimentConfig, data) -> tuple[RunInputs, object]:
    train = data.subset("train")
    reference = select_reference(train.ids, train.labels, config.reference_batch.size, config.model.z_dim, config.seed)
    inputs = RunInputs(images=train.images, labels=train.labels, num_classes=len(data.class_names),
                       reference_images=data.images[rows_by_id(data, reference.ids)],
                       reference_labels=reference.labels, reference_z=reference.z)
    return inputs, reference


def quality(name: str, seed: int, steps: int, unconditional: bool, data, classifier) -> dict:
    config = variant_config(name, seed, steps, unconditional)
    inputs, reference = run_inputs(config, data)
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        manifest = train_run(config, inputs, Path(run_dir), device="cpu", log=lambda message: None)
        seconds = time.perf_counter() - started
        scores = score_checkpoints(manifest, classifier=classifier, data=data, evaluation=config.evaluation,
                                   reference=reference, seed=seed)
    best, floor = best_row(scores, "fd", "min"), real_floor_row(scores)
    return {"variant": name, "unconditional": unconditional, "seed": seed, "steps": steps,
            "best": str(best["name"]), "fd": round(float(best["fd"]), 3), "real_floor_fd": round(float(floor["fd"]), 3),
            "ratio": round(float(best["fd"]) / float(floor["fd"]), 3),
            "class_coverage": float(best["class_coverage"]), "precision": round(float(best["precision"]), 3),
            "recall": round(float(best["recall"]), 3), "nn_ratio": round(float(best["nn_ratio"]), 3),
            "train_seconds": round(seconds, 1)}


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        ratios = [r["ratio"] for r in rows if r["variant"] == name]
        coverage = [r["class_coverage"] for r in rows if r["variant"] == name]
        out.append({"variant": name, "seeds": len(ratios), "median_ratio": round(statistics.median(ratios), 3),
                    "min_ratio": min(ratios), "max_ratio": max(ratios), "all_classes": min(coverage) == 10.0})
    return out


def step_costs(names: list[str], steps: int, rounds: int, unconditional: bool, data) -> list[dict]:
    """Seconds per step of each variant over the base's, interleaved round by round on the same data."""
    contenders = {}
    for name in ["base", *[n for n in names if n != "base"]]:
        config = variant_config(name, 0, 10**6, unconditional)
        inputs, _ = run_inputs(config, data)
        state = _fresh_state(config, inputs, torch.device("cpu"))
        contenders[name] = (state, _device_data(inputs, torch.device("cpu")), config.training)
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds + 1):  # the first round warms up
        for name, (state, device_data, training) in contenders.items():
            window = training.model_copy(update={"steps": state.step + steps, "checkpoint_every": 10**9})
            start = time.perf_counter()
            train(state, device_data, window, TrainingCallbacks())
            seconds[name].append((time.perf_counter() - start) / steps)
    base = seconds["base"][1:]
    return [{"variant": name, "step_cost": round(statistics.median(v / b for v, b in zip(values[1:], base)), 3),
             "base_ms_per_step": round(1000 * statistics.median(base), 2)} for name, values in seconds.items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="training steps (default: the experiment's 10,000; --cost: 60)")
    parser.add_argument("--unconditional", action="store_true", help="train without labels (model.conditional false)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (GAN_TORCH_THREADS)")
    parser.add_argument("--cost", action="store_true", help="time each variant's step beside the base's instead")
    parser.add_argument("--rounds", type=int, default=5, help="--cost: timed rounds")
    args = parser.parse_args(argv)
    import os
    os.environ["GAN_TORCH_THREADS"] = str(args.threads)  # train_run follows the load otherwise
    torch.set_num_threads(args.threads)
    config = load_experiment(DEFAULT)
    data = load_dataset(config.dataset)
    if args.cost:
        for line in step_costs(args.variants, args.steps or 60, args.rounds, args.unconditional, data):
            print(json.dumps(line), flush=True)
        return
    train_split = data.subset("train")
    classifier = train_classifier(train_split.images, train_split.labels, len(data.class_names), config.evaluator, 0)
    rows = []
    for seed in args.seeds:
        for name in args.variants:
            rows.append(quality(name, seed, args.steps or config.training.steps, args.unconditional, data, classifier))
            print(json.dumps(rows[-1]), flush=True)
    for line in summary(rows):
        print(json.dumps({"summary": True, **line}), flush=True)


if __name__ == "__main__":
    main()
