"""Quality guard for the fast path: after the same steps on digits, bf16's FD is within seed noise of fp32's.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_quality.py [--seeds 0 1 2] [--steps 5000]
Trains the default experiment (`experiments/digits-dcgan.yaml`) once per seed and precision, scores the last
checkpoint with one evaluator (the default experiment's, seed 0) exactly as `checkpoint_scores` does, and
prints one JSON line per run, then a summary line: the mean and spread of FD per precision and whether the
bf16 mean lies within the fp32 runs' seed spread (max - min).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from gan_assets.core.config import load_experiment  # noqa: E402
from gan_assets.core.data.images import rows_by_id  # noqa: E402
from gan_assets.core.data.reference import select_reference  # noqa: E402
from gan_assets.core.data.sources import load_dataset  # noqa: E402
from gan_assets.core.evaluation.classifier import train_classifier  # noqa: E402
from gan_assets.core.evaluation.scoring import score_checkpoints  # noqa: E402
from gan_assets.core.training.run import RunInputs, train_run  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1] / "experiments" / "digits-dcgan.yaml"


def final_fd(seed: int, precision: str, steps: int, data, classifier) -> dict:
    config = load_experiment(DEFAULT)
    config.seed = seed
    config.training.steps, config.training.precision = steps, precision
    config.training.checkpoint_every = steps
    train = data.subset("train")
    reference = select_reference(train.ids, train.labels, config.reference_batch.size, config.model.z_dim, seed)
    inputs = RunInputs(images=train.images, labels=train.labels, num_classes=len(data.class_names),
                       reference_images=data.images[rows_by_id(data, reference.ids)],
                       reference_labels=reference.labels, reference_z=reference.z)
    started = time.perf_counter()
    manifest = train_run(config, inputs, Path(tempfile.mkdtemp()), log=lambda message: None)
    seconds = time.perf_counter() - started
    scores = score_checkpoints(manifest, classifier=classifier, data=data, evaluation=config.evaluation,
                               reference=reference, seed=seed)
    last = scores.iloc[-2]  # the last checkpoint (the real floor is the last row)
    return {"seed": seed, "precision": precision, "steps": steps, "fd": round(float(last["fd"]), 3),
            "real_floor_fd": round(float(scores.iloc[-1]["fd"]), 3), "class_coverage": float(last["class_coverage"]),
            "train_seconds": round(seconds, 1), "steps_per_second": round(manifest.timing.steps_per_second, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()
    config = load_experiment(DEFAULT)
    data = load_dataset(config.dataset)
    train = data.subset("train")
    classifier = train_classifier(train.images, train.labels, len(data.class_names), config.evaluator, seed=0)
    runs = []
    for seed in args.seeds:  # precisions alternate, so machine noise hits both alike
        for precision in ("fp32", "bf16"):
            runs.append(final_fd(seed, precision, args.steps, data, classifier))
            print(json.dumps(runs[-1]), flush=True)
    fds = {p: [r["fd"] for r in runs if r["precision"] == p] for p in ("fp32", "bf16")}
    spread = max(fds["fp32"]) - min(fds["fp32"])
    print(json.dumps({"summary": "fd_by_precision", "seeds": args.seeds, "steps": args.steps,
                      **{f"{p}_fd_mean": round(statistics.mean(v), 3) for p, v in fds.items()},
                      "fp32_seed_spread": round(spread, 3),
                      "bf16_within_fp32_seed_noise": abs(statistics.mean(fds["bf16"]) - statistics.mean(fds["fp32"]))
                      <= spread}))


if __name__ == "__main__":
    main()
