"""Training throughput of the default experiment's DCGAN on the bundled digits.

Run:  .venv/bin/python benchmarks/bench_training.py [--steps 300] [--device auto]
Prints one JSON line: steps/s and real images/s after a short warm-up, on the chosen device
(auto = CUDA when present, else CPU), with the default experiment's networks and batch size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from gan_assets.core.config import load_experiment  # noqa: E402
from gan_assets.core.networks import (  # noqa: E402
    build_discriminator,
    build_generator,
    dcgan_init_,  # noqa: E402
)
from gan_assets.core.sources import load_dataset  # noqa: E402
from gan_assets.core.training_loop import STEP_FUNCTIONS, TrainingData, new_state, resolve_device  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1] / "experiments" / "digits-dcgan.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", type=Path, default=DEFAULT)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    config = load_experiment(args.experiment)
    device = resolve_device(args.device)
    data = load_dataset(config.dataset).subset("train")
    shape = data.images.shape[1:]
    torch.manual_seed(0)
    g, d = build_generator(config.model, shape, 10), build_discriminator(config.model, shape, 10)
    dcgan_init_(g), dcgan_init_(d)
    state = new_state(g.to(device), d.to(device), config.training, 0, device, 10)
    batch = TrainingData(torch.from_numpy(data.images).to(device), torch.from_numpy(data.labels).to(device))
    step = STEP_FUNCTIONS[config.training.update]
    for _ in range(20):  # warm-up: allocator, kernels
        step(state, batch, config.training)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        stats = step(state, batch, config.training)
    stats.tolist()  # wait for the device
    seconds = time.perf_counter() - start
    print(json.dumps({"device": str(device), "threads": torch.get_num_threads(), "steps": args.steps,
                      "seconds": round(seconds, 3), "steps_per_second": round(args.steps / seconds, 2),
                      "images_per_second": round(args.steps * config.training.batch_size / seconds, 1)}))


if __name__ == "__main__":
    main()
