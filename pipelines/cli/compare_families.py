"""`python -m pipelines.cli.compare_families experiments/<a>.yaml …` (`make compare-families`): the tutorial's §2 model
families on the same data, one JSON line each, with the leaderboard and the claims read off it.

Runs each experiment's whole graph exactly as `make run` does (`pipelines.cli.run_experiment`), materializes the
leaderboard, and prints for each experiment one JSON line with exactly the keys of `KEYS`, from the leaderboard's
row (its best checkpoint by FD). The leaderboard's markdown and the claim readings go to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from gan_assets.assets.leaderboard import leaderboard_markdown
from gan_assets.core.config import ConfigError
from gan_assets.core.runtime.device import DEVICE_SETTING, resolve_device
from gan_assets.core.storage import ExperimentKeyError
from gan_assets.resources.torch_device import device_from_env
from pipelines.automation.recovery import recover_dead_runs
from pipelines.cli.console import UserInputError
from pipelines.cli.run_experiment import check_experiment_files, run_one

FAMILY_EXPERIMENTS = ("experiments/digits-dcgan.yaml", "experiments/digits-vae.yaml", "experiments/digits-fvbn.yaml",
                      "experiments/digits-real-nvp.yaml")
KEYS = ("family", "fd", "precision", "recall", "class_coverage", "samples_per_second", "bits_per_dim",
        "bits_per_dim_is_bound", "train_seconds")


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return None
    return float(f"{float(value):.4g}")


def family_line(row: pd.Series) -> dict[str, Any]:
    """One leaderboard row as the comparison's JSON line: a GAN has no likelihood (bits_per_dim null, not a bound)."""
    bound = row.get("bits_per_dim_is_bound")
    return {"family": row["family"], **{k: _number(row.get(k)) for k in KEYS[1:7]},
            "bits_per_dim_is_bound": bool(bound) if bound is not None and not pd.isna(bound) else False,
            "train_seconds": _number(row.get("train_seconds"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", type=Path, nargs="*", default=[Path(p) for p in FAMILY_EXPERIMENTS],
                        help="experiment YAML files, all in one folder (default: the four digits families)")
    parser.add_argument("--no-run", action="store_true",
                        help="only materialize the leaderboard and print the lines of experiments already run")
    parser.add_argument("--device", help=f"torch device: auto, cpu, cuda, cuda:N (sets {DEVICE_SETTING})")
    args = parser.parse_args(argv)
    if args.device:
        os.environ[DEVICE_SETTING] = args.device
    try:
        resolve_device(device_from_env())
        configs = check_experiment_files(args.experiments)  # a bad file fails here, before any work
    except (ValueError, ConfigError, ExperimentKeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    from pipelines.definitions import STORAGE_ROOT, build_definitions

    defs = build_definitions(STORAGE_ROOT, args.experiments[0].resolve().parent)
    with dg.DagsterInstance.get() as instance:
        recover_dead_runs(instance, log=lambda message: print(message, file=sys.stderr))
        try:
            for path in [] if args.no_run else args.experiments:
                print(json.dumps(run_one(defs, instance, path, configs[path], STORAGE_ROOT)), file=sys.stderr, flush=True)
        except UserInputError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("leaderboard")])
    table = result.output_for_node("leaderboard").set_index("experiment")
    [event] = result.asset_materializations_for_node("leaderboard")
    print(leaderboard_markdown(table.reset_index()), event.metadata["family_claims"].value, sep="\n\n", file=sys.stderr)
    for path in args.experiments:
        print(json.dumps(family_line(table.loc[path.stem])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
