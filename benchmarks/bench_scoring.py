"""End-to-end scoring of one checkpoint: generate N samples, embed them, every default metric.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scoring.py [--samples 10000]
Prints one JSON line. Uses the default experiment's networks and the bundled digits; the weights
are freshly initialised (the cost does not depend on them) and the evaluator trains one epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from gan_assets.core.config import EvaluatorConfig, load_experiment  # noqa: E402
from gan_assets.core.data.reference import select_reference  # noqa: E402
from gan_assets.core.data.sources import load_dataset  # noqa: E402
from gan_assets.core.evaluation.classifier import train_classifier  # noqa: E402
from gan_assets.core.evaluation.scoring import score_checkpoints  # noqa: E402
from gan_assets.core.training.run import RunInputs, train_run  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1] / "experiments" / "digits-dcgan.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    args = parser.parse_args()
    config = load_experiment(DEFAULT)
    config.training.steps, config.training.checkpoint_every = 1, 1  # one checkpoint to score
    config.evaluation.num_samples = args.samples
    data = load_dataset(config.dataset)
    train = data.subset("train")
    reference = select_reference(train.ids, train.labels, 64, config.model.z_dim, 0)
    run_dir = Path(tempfile.mkdtemp())
    inputs = RunInputs(images=train.images, labels=train.labels, num_classes=10, reference_images=train.images[:64],
                       reference_labels=reference.labels, reference_z=reference.z)
    manifest = train_run(config, inputs, run_dir, log=lambda message: None)
    classifier = train_classifier(train.images, train.labels, 10, EvaluatorConfig(epochs=1), seed=0)
    start = time.perf_counter()
    scores = score_checkpoints(manifest, classifier=classifier, data=data, evaluation=config.evaluation,
                               reference=reference, seed=0)
    seconds = time.perf_counter() - start
    print(json.dumps({"benchmark": "score_one_checkpoint", "samples": args.samples, "threads": torch.get_num_threads(),
                      "metrics": config.evaluation.metrics, "seconds": round(seconds, 2),
                      "finite": bool(np.isfinite(scores.drop(columns=["name", "step"]).to_numpy(float)).all())}))


if __name__ == "__main__":
    main()
