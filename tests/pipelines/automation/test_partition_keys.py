"""Hostile input through Dagster's API: a partition key that names no folder, a run config that moves the root.

Dagster 1.13 stores any string `addDynamicPartition` is given (DynamicPartitionsDefinition has no key
validation hook); the project's answer is that `experiment_files_sensor` deletes every registered key without
a valid experiment file on its next tick, and that a run on such a key fails before writing and is not retried
(test_retries.py). The launchpad's run config is validated against the resources' (empty) config schemas.
"""

import dagster as dg
import pytest
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql, infer_repository_selector

from gan_assets.assets.experiment_config import experiments_partitions
from gan_assets.resources.store import ExperimentStore
from pipelines.automation.sensors import experiment_files_sensor
from pipelines.definitions import PROJECT_ROOT

ADD_PARTITION = """
mutation($repo: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on Error { message }
  }
}
"""

LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""


def test_a_hostile_key_is_removed_on_the_next_tick_of_the_files_sensor(tmp_path):
    (tmp_path / "fine.yaml").write_text("seed: 1\n")
    instance = dg.DagsterInstance.ephemeral()
    hostile = ["../x", "a/b", ".hidden", "..", "no-file-for-it"]
    instance.add_dynamic_partitions(experiments_partitions.name, ["fine", *hostile])  # as the API allows
    store = ExperimentStore(experiments_dir=str(tmp_path), storage_root=str(tmp_path / "store"))
    result = experiment_files_sensor(dg.build_sensor_context(instance=instance, resources={"store": store}))
    [delete] = result.dynamic_partitions_requests
    assert isinstance(delete, dg.DeleteDynamicPartitionsRequest)
    assert sorted(delete.partition_keys) == sorted(hostile)


@pytest.fixture
def graphql(tmp_path, monkeypatch):
    """The GraphQL API the UI and the launchpad use, over this project's code location (a gRPC code server)."""
    monkeypatch.setenv("GAN_STORAGE_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("GAN_EXPERIMENTS_DIR", str(tmp_path / "experiments"))
    (tmp_path / "experiments").mkdir()
    with dg.instance_for_test() as instance:
        with define_out_of_process_context(str(PROJECT_ROOT / "pipelines" / "definitions.py"), None, instance) as ctx:
            yield ctx, instance


def test_the_api_stores_any_key_but_refuses_a_run_config_that_moves_the_storage_root(tmp_path, graphql):
    context, instance = graphql
    repo = infer_repository_selector(context)
    added = execute_dagster_graphql(context, ADD_PARTITION, {"repo": repo, "name": "experiments", "key": "../x"})
    assert added.data["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"  # no hook refuses it
    assert instance.get_dynamic_partitions("experiments") == ["../x"]

    for resource, field in [("io_manager", "root"), ("store", "storage_root"), ("store", "experiments_dir")]:
        launched = execute_dagster_graphql(context, LAUNCH_RUN, {"params": {
            "selector": {**repo, "jobName": "experiment"},
            "runConfigData": {"resources": {resource: {"config": {field: str(tmp_path / "elsewhere")}}}},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "../x"}]},
        }}).data["launchRun"]
        assert launched["__typename"] == "RunConfigValidationInvalid", launched
        assert f'unexpected config entry "{field}"' in launched["errors"][0]["message"]
    assert instance.get_runs() == [] and not (tmp_path / "elsewhere").exists()
