"""`python -m pipelines.cli.run_experiment experiments/<name>.yaml …`: the whole graph per experiment.

Registers the file as a partition, observes its config sections, materializes the assets that are missing or
stale into the persistent instance (so the run shows up in `make ui`; an experiment whose assets are all current
is reported, not rewritten; `--fresh` retrains from scratch), prints one JSON line that sums it up, and brings the
`leaderboard` (every experiment's best checkpoint) up to date when a scoring is newer than it. A failure
the input caused (a bad value, data that does not fit it) is one `error:` line and exit status 2.
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
import pandas as pd
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

from gan_assets.assets.dataset import SOURCE_FINGERPRINT
from gan_assets.assets.experiment_config import experiments_partitions
from gan_assets.assets.leaderboard import leaderboard_markdown
from gan_assets.core.config import ConfigError, ExperimentConfig, load_experiment
from gan_assets.core.data.sources import source_fingerprint
from gan_assets.core.evaluation.verdict import verdict_of
from gan_assets.core.runtime.device import DEVICE_SETTING, resolve_device
from gan_assets.core.storage import ExperimentKeyError, check_experiment_key, read_parquet
from gan_assets.resources.torch_device import device_from_env
from gan_assets.resources.trainer_launch import NPROC_SETTING, launch_from_env
from pipelines.automation.recovery import HOST_TAG, recover_dead_runs
from pipelines.cli.console import UserInputError, cli_console, failure_of

STAGES = ("dataset", "reference_batch", "evaluator", "gan_checkpoints", "checkpoint_scores", "exported_generator",
          "sample_gallery")


def register(instance: dg.DagsterInstance, key: str) -> None:
    if not instance.has_dynamic_partition(experiments_partitions.name, key):
        instance.add_dynamic_partitions(experiments_partitions.name, [key])


def summary(instance: dg.DagsterInstance, key: str, materialized: list[str], wall_seconds: float) -> dict:
    """The JSON line: best checkpoint, its verdict and scores beside the real floor, where the files are, the stages this
    run materialized (none when all were current), and its wall time beside the compute those stages measured
    themselves (the rest is orchestration). The verdict is the one checkpoint_scores recorded (`verdict_json`, what
    its asset page shows); scores recorded before verdicts existed get it computed from their stored table."""
    meta = {asset: latest_metadata(instance, asset, key) for asset in STAGES}
    scores = meta["checkpoint_scores"]
    verdict = scores.get("verdict_json") or verdict_of(read_parquet(Path(scores["path"])).to_pandas(),
                                                       scores["best_checkpoint"]).as_dict()
    columns = [k.removeprefix("best_") for k in scores if k.startswith("best_") and k not in ("best_checkpoint", "best_step")]
    return {
        "experiment": key,
        "best_checkpoint": scores["best_checkpoint"],
        "verdict": verdict,  # grade, fd_ratio, each score beside its floor, and why
        "evaluator_accuracy": meta["evaluator"]["held_out_accuracy"],
        "scores": {c: scores[f"best_{c}"] for c in columns},
        "real_floor": {c: scores.get(f"real_floor_{c}") for c in columns},  # bits_per_dim: real data has none
        "gallery": meta["sample_gallery"]["best_grid"],
        "gallery_html": meta["sample_gallery"]["gallery_html"],
        "scores_table": scores["path"],
        "export": meta["exported_generator"]["export_dir"],  # the best generator, loadable without this project
        "materialized": materialized,
        "wall_seconds": round(wall_seconds, 2),
        "compute_seconds": round(sum(meta[asset].get("compute_seconds", 0.0) for asset in materialized), 2),
    }


def latest_metadata(instance: dg.DagsterInstance, asset: str, key: str | None) -> dict:
    """The metadata of the asset's latest materialization (of partition `key`; None: an unpartitioned asset)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key] if key else None), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def stages_to_run(defs: dg.Definitions, instance: dg.DagsterInstance, key: str, storage_root: Path,
                  config: ExperimentConfig, fresh: bool) -> list[str]:
    """The stages that are missing or stale (Dagster's own staleness, what the UI shows) or whose stored file is not
    under `storage_root` any more, in graph order, and the dataset when the files it reads changed on disk; with
    `fresh`, training and everything after it too. Empty when every stage is current: nothing is rewritten."""
    graph = defs.resolve_asset_graph()
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=graph)
    resolver = CachingStaleStatusResolver(instance, graph, view)
    forced = set(STAGES[STAGES.index("gan_checkpoints"):]) if fresh else set()
    return [stage for stage in STAGES
            if stage in forced or not is_current(resolver, instance, stage, key, storage_root, config)]


def is_current(resolver: CachingStaleStatusResolver, instance: dg.DagsterInstance, stage: str, key: str,
               storage_root: Path, config: ExperimentConfig) -> bool:
    if resolver.get_status(dg.AssetKey(stage), key) != StaleStatus.FRESH:
        return False
    metadata = latest_metadata(instance, stage, key)
    if stage == "dataset" and metadata.get(SOURCE_FINGERPRINT, "") != source_fingerprint(config.dataset):
        return False  # images added or replaced under dataset.root: re-read (an unchanged content hash stops there)
    stored = Path(metadata.get("path", ""))  # the IO manager's file of that value
    return stored.is_file() and stored.resolve().is_relative_to(storage_root.resolve())


def console(verbose: bool) -> dict:
    """Run config for the console logger: INFO (our stage and progress lines) unless --verbose asks for
    Dagster's DEBUG events (one line per step input, output and check)."""
    return {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "INFO"}}}}


def job(defs: dg.Definitions, name: str) -> dg.JobDefinition:
    """The job with the console logger of this command: a user error is one line, not a traceback."""
    return defs.resolve_job_def(name).with_logger_defs({"console": cli_console})


def run_one(defs: dg.Definitions, instance: dg.DagsterInstance, path: Path, config: ExperimentConfig,
            storage_root: Path, verbose: bool = False, fresh: bool = False) -> dict:
    """Observe, then materialize the stages of the experiment in `path` that are not current; raises UserInputError
    when the experiment's input fails a stage (the message names the stage and the problem)."""
    started, key = time.perf_counter(), path.stem
    register(instance, key)
    # observe the config sections first: the assets read the snapshots this records
    job(defs, "observe_config").execute_in_process(instance=instance, run_config=console(verbose))
    materialized: list[str] = []
    # Two rounds at most: a dataset re-read because its files changed may come out with a new content hash, and
    # only then are the stages after it stale (an unchanged hash leaves them current).
    for round_ in range(2):
        todo = stages_to_run(defs, instance, key, Path(storage_root), config, fresh and round_ == 0)
        if not todo:
            break
        materialize(defs, instance, key, todo, verbose, fresh and round_ == 0)
        materialized += [stage for stage in todo if stage not in materialized]
    if not materialized:
        print(f"{key}: every stage is current (nothing to materialize; FRESH=1 retrains)", file=sys.stderr)
    return summary(instance, key, materialized, time.perf_counter() - started)


def materialize(defs: dg.Definitions, instance: dg.DagsterInstance, key: str, stages: list[str], verbose: bool,
                fresh: bool) -> None:
    """One run of `stages`; a failure the input caused raises UserInputError naming the stage and the problem."""
    run_config = console(verbose) | ({"ops": {"gan_checkpoints": {"config": {"fresh_run": True}}}} if fresh else {})
    result = job(defs, "experiment").execute_in_process(
        partition_key=key, instance=instance, run_config=run_config, asset_selection=[dg.AssetKey(s) for s in stages],
        tags={HOST_TAG: socket.gethostname()}, raise_on_error=False)
    if not result.success:
        problem = failure_of(result)
        if problem is None:  # not the input's fault: show where it broke
            raise RuntimeError(f"{key}: the experiment run failed (see the traceback above)")
        raise UserInputError(f"{key}: {problem}")


def refresh_leaderboard(defs: dg.Definitions, instance: dg.DagsterInstance, verbose: bool,
                        force: bool = False) -> pd.DataFrame | None:
    """Materialize the leaderboard unless it is newer than every scoring (so a rerun with nothing to do rewrites
    nothing) and not `force`d; the new board, or None when it did not. A failure is one warning: the experiments'
    own results stand."""
    if leaderboard_is_current(instance) and not force:
        return None
    result = defs.resolve_implicit_global_asset_job_def().with_logger_defs({"console": cli_console}).execute_in_process(
        instance=instance, run_config=console(verbose), asset_selection=[dg.AssetKey("leaderboard")],
        tags={HOST_TAG: socket.gethostname()}, raise_on_error=False)
    if not result.success:
        print(f"warning: the leaderboard was not updated: {failure_of(result) or 'see the traceback above'}",
              file=sys.stderr)
        return None
    return result.output_for_node("leaderboard")


def leaderboard_is_current(instance: dg.DagsterInstance) -> bool:
    """Materialized after the latest `checkpoint_scores` of any experiment (what it is built from)."""
    board, scores = (instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset)),
                                                     limit=1).records for asset in ("leaderboard", "checkpoint_scores"))
    return bool(board) and (not scores or board[0].storage_id > scores[0].storage_id)


def check_experiment_files(paths: list[Path]) -> dict[Path, ExperimentConfig]:
    """Each file is a valid experiment whose name is a key, all in one folder (the pipeline reads every experiment
    as `<that folder>/<key>.yaml`: another suffix or folder would validate one file and train another); their
    configs, by path."""
    folders = {path.resolve().parent for path in paths}
    if len(folders) > 1:
        raise ConfigError(f"the experiment files are in {len(folders)} folders ({', '.join(map(str, sorted(folders)))}):"
                          " put them in one")
    for path in paths:
        if path.suffix != ".yaml":
            raise ConfigError(f"{path}: an experiment file is named <key>.yaml (this one ends in {path.suffix!r})")
        try:
            check_experiment_key(path.stem)
        except ExperimentKeyError as err:
            raise ExperimentKeyError(f"{path}: {err}") from None
    return {path: load_experiment(path) for path in paths}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", type=Path, nargs="+", help="experiment YAML files, all in one folder")
    parser.add_argument("--leaderboard", action="store_true", help="then rebuild the leaderboard and print it")
    parser.add_argument("--verbose", action="store_true", help="show Dagster's DEBUG events too")
    parser.add_argument("--fresh", action="store_true",
                        help="retrain from scratch in a new run directory (and rescore), even if current")
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
        configs = check_experiment_files(args.experiments)  # a bad file fails here, before any work
    except (ConfigError, ExperimentKeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # content-hash data versions are the point here
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    from pipelines.definitions import STORAGE_ROOT, build_definitions

    defs = build_definitions(STORAGE_ROOT, args.experiments[0].resolve().parent)
    with dg.DagsterInstance.get() as instance:
        recover_dead_runs(instance, log=lambda message: print(message, file=sys.stderr))
        code = 0
        try:
            for path, config in configs.items():
                print(json.dumps(run_one(defs, instance, path, config, STORAGE_ROOT, args.verbose, args.fresh)),
                      flush=True)
        except UserInputError as err:
            print(f"error: {err}", file=sys.stderr)
            code = 2
        # the experiments scored before a failure are on the board too; `--leaderboard` prints it, so it is rebuilt
        board = refresh_leaderboard(defs, instance, args.verbose, force=args.leaderboard)
        if board is not None:
            print("leaderboard: updated (the `leaderboard` asset in `make ui`; `make compare` prints it)", file=sys.stderr)
            if args.leaderboard and code == 0:
                print(leaderboard_markdown(board))
    return code


if __name__ == "__main__":
    sys.exit(main())
