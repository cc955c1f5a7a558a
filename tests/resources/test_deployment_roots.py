"""Where runs read and write is the deployment's choice: a run's config (the launchpad) cannot move it.

`build_definitions` binds the IO manager's root and the store's folders with no config fields, so a run
config naming one is refused by Dagster's config validation, the check the launchpad runs before it launches.
"""

import dagster as dg
import pytest

from gan_assets.resources.io_manager import ExperimentIOManager, io_manager_at
from gan_assets.resources.store import ExperimentStore, store_at
from pipelines.definitions import build_definitions

OVERRIDES = [("io_manager", "root"), ("store", "storage_root"), ("store", "experiments_dir")]


@pytest.fixture
def job(tmp_path, experiments_dir) -> dg.JobDefinition:
    return build_definitions(tmp_path / "store", experiments_dir).resolve_job_def("experiment")


@pytest.mark.parametrize(("resource", "field"), OVERRIDES)
def test_a_run_config_cannot_move_the_storage_root_or_the_experiment_files(tmp_path, job, resource, field):
    elsewhere = tmp_path / "elsewhere"
    run_config = {"resources": {resource: {"config": {field: str(elsewhere)}}}}
    with pytest.raises(dg.DagsterInvalidConfigError, match=f'unexpected config entry "{field}"'):
        dg.validate_run_config(job, run_config)

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("experiments", ["tiny"])
    with pytest.raises(dg.DagsterInvalidConfigError, match=f'unexpected config entry "{field}"'):
        job.execute_in_process(instance=instance, partition_key="tiny", run_config=run_config)
    assert not elsewhere.exists() and not (tmp_path / "store").exists()  # refused before anything ran
    assert instance.get_runs() == []


def test_the_launch_options_stay_configurable(job):
    dg.validate_run_config(job, {"ops": {"gan_checkpoints": {"config": {"fresh_run": True}}},
                                 "resources": {"torch_device": {"config": {"name": "cpu"}}}})


def test_the_bound_resources_hand_out_the_deployments_folders(tmp_path):
    with dg.build_resources({"store": store_at(tmp_path / "exp", tmp_path / "root"),
                             "io_manager": io_manager_at(tmp_path / "root")}) as resources:
        assert isinstance(resources.store, ExperimentStore)
        assert (resources.store.experiments_dir, resources.store.storage_root) == (str(tmp_path / "exp"),
                                                                                 str(tmp_path / "root"))
        assert isinstance(resources.io_manager, ExperimentIOManager)
        assert resources.io_manager.root == str(tmp_path / "root")
