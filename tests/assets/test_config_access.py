"""Assets read the config section versions Dagster observed, not whatever the file holds later."""

import dagster as dg
import yaml

from gan_assets.experiment import ExperimentStore, experiments_partitions, load_config, observed_versions
from pipelines.definitions import build_definitions
from tests.conftest import TINY_EXPERIMENT


def test_load_config_reads_the_observed_snapshot(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    store = ExperimentStore(experiments_dir=str(tmp_path), storage_root=str(tmp_path / "store"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["tiny"])
    build_definitions(tmp_path / "store", tmp_path).resolve_job_def("observe_config").execute_in_process(instance=instance)
    edited = {**TINY_EXPERIMENT, "training": {**TINY_EXPERIMENT["training"], "steps": 999}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(edited))  # saved after the observation

    observed = dg.build_asset_context(partition_key="tiny", instance=instance)
    assert load_config(observed, store).training.steps == 20  # the snapshot Dagster recorded
    versions = observed_versions(observed, "gan_checkpoints")
    assert set(versions) == {"model", "training", "seed"} and all(len(v) == 64 for v in versions.values())
    never_observed = dg.build_asset_context(partition_key="tiny")
    assert load_config(never_observed, store).training.steps == 999  # no observation: the file
