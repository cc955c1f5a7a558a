"""How an experiment reaches the assets: its partition, where its files live, and its config.

Every asset reads its config through `load_config` and nothing else, so changing how config
reaches assets (e.g. observed, content-addressed section snapshots) touches this one place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg

from gan_assets.core.config import ExperimentConfig, load_experiment

# One partition per YAML file in experiments/; the key is the file name without `.yaml`.
experiments_partitions = dg.DynamicPartitionsDefinition(name="experiments")


class ExperimentStore(dg.ConfigurableResource):
    """Where experiment files are read from and where each experiment's outputs are written."""

    experiments_dir: str = "experiments"
    storage_root: str = "data"

    def experiment_file(self, key: str) -> Path:
        return Path(self.experiments_dir) / f"{key}.yaml"

    def experiment_keys(self) -> list[str]:
        return sorted(p.stem for p in Path(self.experiments_dir).glob("*.yaml"))

    def output_dir(self, key: str) -> Path:
        return Path(self.storage_root) / "experiments" / key


def load_config(context: dg.AssetExecutionContext, store: ExperimentStore) -> ExperimentConfig:
    """The effective config (defaults overridden by the YAML) of the partition being materialized."""
    return load_experiment(store.experiment_file(context.partition_key))


def config_metadata(config: ExperimentConfig) -> dict[str, Any]:
    """The effective config, recorded on every materialization so a result names what made it."""
    return {"config": dg.MetadataValue.json(json.loads(config.model_dump_json()))}
