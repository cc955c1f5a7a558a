"""What live telemetry costs a training: the default experiment trained with and without its watchers, side by side.

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_telemetry.py [--steps 600] [--rounds 3] [--no-mlflow]

After one untimed warm-up run, each round trains `experiments/digits-dcgan.yaml` from scratch `--steps` steps
(checkpoints every half, so a grid is drawn twice: 6x the default's checkpoints per step) once per variant, in turn
(the order reversed every other round), on the same data:
  none         no observer
  local        what every training gets: TensorBoard event files, plus the live file a torchrun trainer writes
               for the Dagster step (gan_assets/core/telemetry/live_file.py), one grid per checkpoint
  mlflow       local + an MLflow run on a real `mlflow server` this script starts on a free loopback port
The Dagster page's own observer is not in it: it needs a Dagster step; per report it stores one event (at most one
per 10 s) and serves the grid the others already drew.
Printed: one JSON line per variant, `overhead` = its wall seconds over `none`'s minus 1, the median over rounds
(the VM's speed moves between runs; only these side-by-side ratios count), with `none`'s median seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
import torch  # noqa: E402

from benchmarks.bench_options import run_inputs  # noqa: E402
from gan_assets.core.config import load_experiment, parse_experiment  # noqa: E402
from gan_assets.core.data.sources import load_dataset  # noqa: E402
from gan_assets.core.telemetry.live_file import LiveFileObserver  # noqa: E402
from gan_assets.core.telemetry.session import training_observers  # noqa: E402
from gan_assets.core.telemetry.tracking import TrackingSettings  # noqa: E402
from gan_assets.core.training.run import train_run  # noqa: E402
from tests.mlflow_server import running_mlflow_server  # noqa: E402 - the tests' own server, started alike

DEFAULT = Path(__file__).resolve().parents[1] / "experiments" / "digits-dcgan.yaml"


def timed_run(config, inputs, run_dir: Path, variant: str, tracking: TrackingSettings | None) -> float:
    watchers = None
    if variant != "none":
        watchers = training_observers(run_dir, inputs, tracking=tracking if variant == "mlflow" else None,
                                      tags={"gan.experiment": "bench-telemetry"},
                                      extra=[LiveFileObserver(run_dir / "launch")], log=print)
    start = time.perf_counter()
    train_run(config, inputs, run_dir, device="cpu", log=lambda message: None, observer=watchers)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (GAN_TORCH_THREADS)")
    parser.add_argument("--no-mlflow", action="store_true", help="leave out the MLflow variant (no server)")
    args = parser.parse_args(argv)
    os.environ["GAN_TORCH_THREADS"] = str(args.threads)  # train_run follows the load otherwise
    torch.set_num_threads(args.threads)
    raw = load_experiment(DEFAULT).model_dump(mode="json")
    raw["training"].update(steps=args.steps, checkpoint_every=args.steps // 2)
    config = parse_experiment(raw, origin=f"{DEFAULT}, {args.steps} steps")
    inputs, _ = run_inputs(config, load_dataset(config.dataset))
    variants = ["none", "local"] + ([] if args.no_mlflow else ["mlflow"])
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with contextlib.ExitStack() as stack:
            uri = None if args.no_mlflow else stack.enter_context(running_mlflow_server(root / "mlflow"))
            tracking = TrackingSettings(tracking_uri=uri, experiment_name="bench-telemetry") if uri else None
            timed_run(config, inputs, root / "warm-up", "none", None)  # one-time costs (kernels, caches) stay out
            for round_ in range(args.rounds):
                for variant in variants if round_ % 2 == 0 else variants[::-1]:  # neither goes first every round
                    run_dir = root / "runs" / f"{variant}-{round_}"
                    seconds[variant].append(timed_run(config, inputs, run_dir, variant, tracking))
                    shutil.rmtree(run_dir)
    base = seconds["none"]
    for variant in variants:
        ratios = [s / b for s, b in zip(seconds[variant], base)]
        print(json.dumps({"variant": variant, "overhead": round(statistics.median(ratios) - 1, 4),
                          "ratios": [round(r, 4) for r in ratios], "none_seconds": round(statistics.median(base), 1),
                          "steps": args.steps, "rounds": args.rounds}), flush=True)


if __name__ == "__main__":
    main()
