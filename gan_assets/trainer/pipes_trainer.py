"""`python -m gan_assets.trainer.pipes_trainer`: the trainer in its own process (one rank under torchrun), speaking Dagster Pipes.

The `gan_checkpoints` asset launches it through `PipesSubprocessClient` (torchrun on this machine) or
`PipesK8sClient` (a pod), see gan_assets/resources/trainer_launch.py, and passes everything as Pipes extras:
  config      the experiment config (ExperimentConfig as JSON)
  inputs      path of the run's inputs (.npz, core/training/trainer_inputs.py), which the asset wrote
  run_dir     the run directory, shared with the asset, which reads the manifest from it afterwards
  device      the deployment's torch device (auto, cpu, cuda); under torchrun each rank takes cuda:LOCAL_RANK
  deterministic, compile   the deployment's other device settings (core/runtime/device.py: DeviceSettings)
  launch_dir  where each rank leaves its status (rank_N.json): its error when it fails, its weights' digest at the end;
              rank 0 also appends its live progress there (live.jsonl), which the launching step reports as it comes
  tracking, tracking_tags   the MLflow tracking server and the tags that lead back to Dagster (None: not tracked)
Every rank runs `train_run`, the in-process asset's own function (the ranks split each global batch:
core/training/distributed.py). Rank 0 alone opens Pipes, logs, and reports the materialization (facts and data version)
and both checks, computed by `run_report` exactly as the in-process asset computes them.

It imports the small `dagster-pipes` package and the core, never `dagster`. Without Dagster, `--extras FILE.json`
gives the same keys (a run started by hand or by another scheduler); nothing is reported then.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from dagster_pipes import PipesContext, PipesDefaultContextLoader, PipesEnvVarParamsLoader, open_dagster_pipes

from gan_assets.core.config import ExperimentConfig
from gan_assets.core.runtime.device import DeviceSettings
from gan_assets.core.telemetry.live_file import LiveFileObserver
from gan_assets.core.telemetry.session import training_observers
from gan_assets.core.telemetry.tracking import TrackingSettings
from gan_assets.core.training.distributed import DataParallel, rank_device
from gan_assets.core.training.observers import Observers
from gan_assets.core.training.report import CHECK_NAMES, RunReport, run_report
from gan_assets.core.training.run import RunInputs, train_run
from gan_assets.core.training.trainer_inputs import read_trainer_inputs

STATUS_FILE = "rank_{rank}.json"


def pipes_extras() -> dict[str, Any]:
    """The extras of the Pipes session that launched this process, read without opening a message channel
    (ranks other than 0 read their orders but never write to Dagster)."""
    params = PipesEnvVarParamsLoader()
    if not params.is_dagster_pipes_process():
        raise RuntimeError("not launched through Dagster Pipes (no DAGSTER_PIPES_CONTEXT): pass --extras FILE.json")
    with PipesDefaultContextLoader().load_context(params.load_context_params()) as data:
        return dict(data["extras"])


def write_status(launch_dir: Path, rank: int, **status: Any) -> None:
    launch_dir.mkdir(parents=True, exist_ok=True)
    path = launch_dir / STATUS_FILE.format(rank=rank)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"rank": rank, "time": time.time(), **status}))
    tmp.replace(path)


def report(pipes: PipesContext, result: RunReport, world_size: int) -> None:
    """The materialization and both checks, as the in-process asset yields them."""
    facts = {**result.facts, "world_size": world_size}
    pipes.report_asset_materialization(metadata=facts, data_version=result.data_version)
    for name in CHECK_NAMES:
        check = result.checks[name]
        pipes.report_asset_check(name, passed=bool(check.passed), metadata=check.facts,
                                 severity="ERROR" if name == "finite_weights" else "WARN")


def device_settings(extras: dict[str, Any]) -> DeviceSettings:
    """The launching deployment's device settings, sent in the extras (a pod has no GAN_* variables of its own)."""
    return DeviceSettings(name=extras.get("device", "auto"), deterministic=extras.get("deterministic", True),
                          compile=extras.get("compile", "off"))


def train_rank(extras: dict[str, Any], parallel: DataParallel | None, log) -> RunReport | None:
    """This rank's share of the run; the report on rank 0 (or a single process), None elsewhere."""
    config = ExperimentConfig.model_validate(extras["config"])
    inputs = read_trainer_inputs(Path(extras["inputs"]))
    device = device_settings(extras)
    if parallel is not None:
        torch_device = rank_device(device.name, parallel.local_rank)
        parallel.start(torch_device)
        device = replace(device, name=str(torch_device))
    leader = parallel is None or parallel.is_leader
    watchers = rank_observers(extras, inputs, log) if leader else None
    manifest = train_run(config, inputs, Path(extras["run_dir"]), device=device, log=log, parallel=parallel,
                         observer=watchers)
    if parallel is not None and not parallel.replicas_identical():
        raise RuntimeError(f"the ranks' weights differ after training (rank {parallel.rank}): gradients were not "
                           f"averaged alike; the run in {extras['run_dir']} cannot be trusted")
    return run_report(manifest) if leader else None


def rank_observers(extras: dict[str, Any], inputs: RunInputs, log) -> Observers:
    """Rank 0's watchers: those of an in-process training (core/telemetry/session.py), with the live file the
    launching Dagster step follows (gan_assets/resources/live_events.py) in place of the asset page."""
    tracking = TrackingSettings(**extras["tracking"]) if extras.get("tracking") else None
    return training_observers(Path(extras["run_dir"]), inputs, tracking=tracking, tags=extras.get("tracking_tags"),
                              extra=[LiveFileObserver(Path(extras["launch_dir"]))], log=log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", type=Path, help="a JSON file of the extras, to run without Dagster")
    args = parser.parse_args(argv)
    extras = json.loads(args.extras.read_text()) if args.extras else pipes_extras()
    parallel = DataParallel.from_env()
    rank, world_size = (parallel.rank, parallel.world_size) if parallel else (0, 1)
    launch_dir = Path(extras["launch_dir"])
    leader = rank == 0
    # rank 0 speaks for the run; `with` reports an exception to Dagster before the process exits
    pipes = open_dagster_pipes() if leader and not args.extras else nullcontext(None)
    try:
        with pipes as channel:
            log = channel.log.info if channel is not None else (print if leader else lambda message: None)
            result = train_rank(extras, parallel, log)
            if channel is not None and result is not None:
                report(channel, result, world_size)
        write_status(launch_dir, rank, status="finished", weights_sha256=parallel.weights_digest() if parallel else None)
    except BaseException as err:  # noqa: BLE001 - every failure, even an interrupt, leaves its message
        write_status(launch_dir, rank, status="failed", error=f"rank {rank}: {type(err).__name__}: {err}")
        raise
    finally:
        if parallel is not None:
            parallel.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
