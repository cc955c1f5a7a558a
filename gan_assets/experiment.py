"""How an experiment reaches the assets: its partition, where its files live, and its config.

Every asset reads its config through `load_config` and nothing else, so changing how config
reaches assets (e.g. observed, content-addressed section snapshots) touches this one place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg

from gan_assets.core.config import ExperimentConfig, load_experiment, parse_experiment

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


def config_key(section: str) -> dg.AssetKey:
    return dg.AssetKey(["config", section])


# The config sections each asset reads: its lineage, and exactly what makes it stale when edited.
SECTIONS_READ = {
    "dataset": ("dataset", "seed"),
    "reference_batch": ("reference_batch", "model", "seed"),  # model: z_dim
    "evaluator": ("evaluator", "seed"),
    "gan_checkpoints": ("model", "training", "seed"),
    "checkpoint_scores": ("evaluation", "seed"),
    "sample_gallery": ("gallery", "evaluation"),  # evaluation: best metric and sampling mode
}


def config_deps(asset: str) -> list[dg.AssetKey]:
    return [config_key(section) for section in SECTIONS_READ[asset]]


def load_config(context: dg.AssetExecutionContext, store: ExperimentStore) -> ExperimentConfig:
    """The effective config of the partition being materialized, as Dagster last observed it.

    Every section comes from the content-addressed snapshot of its latest observation, so an edit
    saved after the observation (or mid-run) cannot leak into this materialization. Sections never
    observed (a direct invocation, a fresh instance) are read from the file, and the log says so.
    """
    from gan_assets.config_sources import CONFIG_SECTIONS, snapshot_path

    raw, unobserved = {}, []
    for section in CONFIG_SECTIONS:
        version = observed_version(context.instance, config_key(section), context.partition_key)
        path = snapshot_path(store, section, version) if version else None
        if path is None or not path.exists():
            unobserved.append(section)
            continue
        raw[section] = json.loads(path.read_text())
    if not unobserved:
        return parse_experiment(raw, origin=f"observed config of {context.partition_key}")
    context.log.info(f"sections {unobserved} never observed: reading {store.experiment_file(context.partition_key)}")
    return load_experiment(store.experiment_file(context.partition_key))


def observed_versions(context: dg.AssetExecutionContext, asset: str) -> dict[str, str | None]:
    """The observed version of each config section `asset` reads, for its metadata.

    Dagster's own input-version tags do not resolve partitions of observed sources, so the versions
    a materialization was computed from are recorded here, where the retrain schedule compares them.
    """
    return {section: observed_version(context.instance, config_key(section), context.partition_key)
            for section in SECTIONS_READ[asset]}


def observed_version(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> str | None:
    record = instance.get_latest_data_version_record(key, is_source=True, partition_key=partition)
    if record is None or record.asset_observation is None:
        return None
    return record.asset_observation.tags.get("dagster/data_version")


def config_metadata(config: ExperimentConfig) -> dict[str, Any]:
    """The effective config, recorded on every materialization so a result names what made it."""
    return {"config": dg.MetadataValue.json(json.loads(config.model_dump_json()))}
