"""Time the default image metrics on 10,000 generated vs 10,000 real evidences (CPU).

Run:  OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_metrics.py
Prints one JSON line; `seconds` is the goal figure (<= 30 s on a 2-core CPU).
Random evidence is enough: the cost depends on shapes, not on what the numbers mean.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from gan_assets.core.evaluation.metrics import (  # noqa: E402
    DEFAULT_IMAGE_METRICS,
    Evidence,
    MetricContext,
    compute_metrics,
    median_nearest_distance,
)


def random_evidence(n: int, d: int, k: int, pixels: int, gen: torch.Generator) -> Evidence:
    return Evidence(
        features=torch.randn(n, d, generator=gen),
        probs=torch.randn(n, k, generator=gen).mul(3).softmax(dim=1),
        pixels=torch.rand(n, pixels, generator=gen),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)  # generated and real set size
    parser.add_argument("--d", type=int, default=128)  # evaluator feature width
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--pixels", type=int, default=1024)  # 32x32 grey
    parser.add_argument("--heldout", type=int, default=2_000)  # held-out images for nn_ratio's floor
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    samples = random_evidence(args.n, args.d, args.classes, args.pixels, gen)
    real = random_evidence(args.n, args.d, args.classes, args.pixels, gen)
    heldout = torch.rand(args.heldout, args.pixels, generator=gen)

    t0 = time.perf_counter()
    floor = median_nearest_distance(heldout, real.pixels)  # once per dataset, not per checkpoint
    setup = time.perf_counter() - t0
    ctx = MetricContext(class_prior=torch.full((args.classes,), 1 / args.classes), heldout_nn_distance=floor)

    per_metric, cpu = {}, time.process_time()
    for name in DEFAULT_IMAGE_METRICS:
        t0 = time.perf_counter()
        compute_metrics([name], samples, real, ctx)
        per_metric[name] = round(time.perf_counter() - t0, 3)
    cpu = time.process_time() - cpu  # all threads: a load-independent cross-check of the wall time
    print(json.dumps({
        "benchmark": "default_image_metrics", "n_samples": args.n, "n_real": args.n, "d": args.d,
        "pixels": args.pixels, "threads": torch.get_num_threads(),
        "seconds": round(sum(per_metric.values()), 3), "cpu_seconds": round(cpu, 3), "per_metric_seconds": per_metric,
        "heldout_floor_seconds": round(setup, 3),
    }))


if __name__ == "__main__":
    main()
