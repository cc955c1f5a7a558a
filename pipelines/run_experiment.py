"""`python -m pipelines.run_experiment experiments/<name>.yaml`: the whole graph for one experiment.

Registers the file as a partition, observes its config sections, materializes every asset into the
persistent instance (so the run shows up in `make ui`), and prints one JSON line that sums it up.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import dagster as dg

from gan_assets.core.config import ConfigError, load_experiment
from gan_assets.experiment import experiments_partitions


def register(instance: dg.DagsterInstance, key: str) -> None:
    if not instance.has_dynamic_partition(experiments_partitions.name, key):
        instance.add_dynamic_partitions(experiments_partitions.name, [key])


def summary(result: dg.ExecuteInProcessResult, key: str) -> dict:
    """The JSON line: best checkpoint, its scores beside the real floor, where the files are."""
    scores = _metadata(result, "checkpoint_scores")
    columns = [k.removeprefix("best_") for k in scores if k.startswith("best_") and k not in ("best_checkpoint", "best_step")]
    gallery = result.output_for_node("sample_gallery")
    return {
        "experiment": key,
        "best_checkpoint": scores["best_checkpoint"],
        "evaluator_accuracy": _metadata(result, "evaluator")["held_out_accuracy"],
        "scores": {c: scores[f"best_{c}"] for c in columns},
        "real_floor": {c: scores[f"real_floor_{c}"] for c in columns},
        "gallery": gallery["best"],
        "scores_table": scores["path"],
    }


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="an experiment YAML file in the experiments directory")
    args = parser.parse_args(argv)
    try:
        load_experiment(args.experiment)  # a bad config fails here, before any work
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from pipelines.definitions import STORAGE_ROOT, build_definitions

    key = args.experiment.stem
    defs = build_definitions(STORAGE_ROOT, args.experiment.resolve().parent)
    with dg.DagsterInstance.get() as instance:
        register(instance, key)
        # observe the config sections first: the assets read the snapshots this records
        defs.resolve_job_def("observe_config").execute_in_process(instance=instance)
        result = defs.resolve_job_def("experiment").execute_in_process(partition_key=key, instance=instance)
    print(json.dumps(summary(result, key)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
