"""`python -m pipelines.cli.run_experiment experiments/<name>.yaml …`: the whole graph per experiment.

Registers the file as a partition, observes its config sections, materializes every asset into the
persistent instance (so the run shows up in `make ui`), and prints one JSON line that sums it up.
Before any work it checks every file (config, its name as a partition key) and the device (`GAN_DEVICE`,
or `--device`, which sets it for this run: the device is the machine's, not the experiment's), and
recovers runs of this instance whose process died, so a killed earlier run never blocks this one.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import warnings
from pathlib import Path

import dagster as dg

from gan_assets.assets.experiment_config import experiments_partitions
from gan_assets.core.config import ConfigError, load_experiment
from gan_assets.core.runtime.device import DEVICE_SETTING, resolve_device
from gan_assets.core.storage import ExperimentKeyError, check_experiment_key
from gan_assets.resources.torch_device import device_from_env
from gan_assets.resources.trainer_launch import NPROC_SETTING, launch_from_env
from pipelines.automation.recovery import HOST_TAG, recover_dead_runs

STAGES = ("dataset", "reference_batch", "evaluator", "gan_checkpoints", "checkpoint_scores", "sample_gallery")


def register(instance: dg.DagsterInstance, key: str) -> None:
    if not instance.has_dynamic_partition(experiments_partitions.name, key):
        instance.add_dynamic_partitions(experiments_partitions.name, [key])


def summary(result: dg.ExecuteInProcessResult, key: str, wall_seconds: float) -> dict:
    """The JSON line: best checkpoint, its scores beside the real floor, where the files are, and the wall
    time of the whole run beside the compute the assets measured themselves (the rest is orchestration)."""
    scores = _metadata(result, "checkpoint_scores")
    columns = [k.removeprefix("best_") for k in scores if k.startswith("best_") and k not in ("best_checkpoint", "best_step")]
    gallery = result.output_for_node("sample_gallery")
    return {
        "experiment": key,
        "best_checkpoint": scores["best_checkpoint"],
        "evaluator_accuracy": _metadata(result, "evaluator")["held_out_accuracy"],
        "scores": {c: scores[f"best_{c}"] for c in columns},
        "real_floor": {c: scores.get(f"real_floor_{c}") for c in columns},  # bits_per_dim: real data has none
        "gallery": gallery["best"],
        "gallery_html": gallery["html"],
        "scores_table": scores["path"],
        "wall_seconds": round(wall_seconds, 2),
        "compute_seconds": round(sum(_metadata(result, asset).get("compute_seconds", 0.0) for asset in STAGES), 2),
    }


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def console(verbose: bool) -> dict:
    """Run config for Dagster's console logger: INFO (our stage and progress lines) unless --verbose asks
    for Dagster's DEBUG events (one line per step input, output and check)."""
    return {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "INFO"}}}}


def run_one(defs: dg.Definitions, instance: dg.DagsterInstance, key: str, verbose: bool = False) -> dict:
    started = time.perf_counter()
    register(instance, key)
    # observe the config sections first: the assets read the snapshots this records
    defs.resolve_job_def("observe_config").execute_in_process(instance=instance, run_config=console(verbose))
    result = defs.resolve_job_def("experiment").execute_in_process(partition_key=key, instance=instance,
                                                                   run_config=console(verbose),
                                                                   tags={HOST_TAG: socket.gethostname()})
    return summary(result, key, time.perf_counter() - started)


def leaderboard(defs: dg.Definitions, instance: dg.DagsterInstance) -> str:
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey("leaderboard")])
    return _metadata(result, "leaderboard")["leaderboard"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", type=Path, nargs="+", help="experiment YAML files, all in one folder")
    parser.add_argument("--leaderboard", action="store_true", help="then materialize the leaderboard")
    parser.add_argument("--verbose", action="store_true", help="show Dagster's DEBUG events too")
    parser.add_argument("--device", help=f"torch device for this run: auto, cpu, cuda, cuda:N (sets {DEVICE_SETTING}; "
                                         f"default: {DEVICE_SETTING}, else auto)")
    parser.add_argument("--nproc", type=int, help=f"train with this many torchrun ranks through Dagster Pipes (sets "
                                                  f"{NPROC_SETTING}; default: {NPROC_SETTING}, else in process)")
    args = parser.parse_args(argv)
    if args.nproc is not None:  # likewise: the definitions read it as the trainer_launch resource
        os.environ[NPROC_SETTING] = str(args.nproc)
    if args.device:  # through the environment, so build_definitions and any run subprocess see the same device
        os.environ[DEVICE_SETTING] = args.device
    try:
        resolve_device(device_from_env())  # a device this machine lacks fails here, before any work
        launch_from_env()  # so does a bad number of ranks
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        for path in args.experiments:  # a bad file fails here, before any work
            check_experiment_key(path.stem)
            load_experiment(path)
    except (ConfigError, ExperimentKeyError) as err:
        print(f"error: {path}: {err}" if not str(err).startswith(str(path)) else f"error: {err}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # content-hash data versions are the point here
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    from pipelines.definitions import STORAGE_ROOT, build_definitions

    defs = build_definitions(STORAGE_ROOT, args.experiments[0].resolve().parent)
    with dg.DagsterInstance.get() as instance:
        recover_dead_runs(instance, log=lambda message: print(message, file=sys.stderr))
        for path in args.experiments:
            print(json.dumps(run_one(defs, instance, path.stem, args.verbose)), flush=True)
        if args.leaderboard:
            print(leaderboard(defs, instance))
    return 0


if __name__ == "__main__":
    sys.exit(main())
