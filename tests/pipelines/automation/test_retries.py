"""Run retries are for crashes: a run that failed on its input is not retried, a dead worker still is.

Each run fails for real on an instance configured by the project's own pipelines/dagster.yaml
(`run_retries` on), and the decision is read where Dagster's run-retry daemon reads it: the
`dagster/will_retry` tag recorded with the run's failure, and the daemon's own `should_retry`.
"""

import os
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.storage.tags import WILL_RETRY_TAG
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry

from gan_assets.core.config import ConfigError
from gan_assets.core.storage import ExperimentKeyError
from pipelines.automation import recovery
from pipelines.definitions import build_definitions

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def instance():
    settings = yaml.safe_load((PROJECT_ROOT / "pipelines" / "dagster.yaml").read_text())
    assert settings["run_retries"]["enabled"]
    with dg.instance_for_test(overrides=settings) as test_instance:
        yield test_instance


@pytest.fixture
def defs(tmp_path, experiments_dir):
    return build_definitions(tmp_path / "store", experiments_dir)


def failed_run(defs, instance, partition: str, selection: list[str] | None = None) -> dg.DagsterRun:
    instance.add_dynamic_partitions("experiments", [partition])
    job = defs.resolve_job_def("experiment")
    result = job.execute_in_process(instance=instance, partition_key=partition, raise_on_error=False,
                                    asset_selection=[dg.AssetKey(k) for k in selection] if selection else None)
    assert not result.success
    return instance.get_run_by_id(result.run_id)


def test_a_hostile_partition_key_fails_once_and_is_not_retried(tmp_path, defs, instance):
    run = failed_run(defs, instance, "../x")
    assert run.tags["dagster/failure_reason"] == "STEP_FAILURE"
    assert run.tags["dagster/retry_on_asset_or_op_failure"] == "false"
    assert run.tags[WILL_RETRY_TAG] == "false"
    assert not should_retry(run, instance)
    messages = [entry.user_message for entry in instance.all_logs(run.run_id)]
    assert any("not retrying this run: ExperimentKeyError" in m for m in messages)
    assert not (tmp_path / "x").exists() and not (tmp_path / "store").exists()  # nothing written anywhere


def test_a_bad_experiment_file_is_not_retried(experiments_dir, defs, instance):
    (experiments_dir / "broken.yaml").write_text("training:\n  steps: [\n")
    run = failed_run(defs, instance, "broken", ["dataset"])
    assert run.tags[WILL_RETRY_TAG] == "false"


def test_another_step_failure_is_still_retried(defs, instance):
    # Training with nothing stored upstream: a FileNotFoundError, not a mistake in the input.
    run = failed_run(defs, instance, "tiny", ["gan_checkpoints"])
    assert "dagster/retry_on_asset_or_op_failure" not in run.tags
    assert run.tags[WILL_RETRY_TAG] == "true"
    assert should_retry(run, instance)


def test_a_run_whose_worker_died_is_still_retried(defs, instance, monkeypatch):
    job = defs.resolve_job_def("experiment")
    run = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED, tags={"dagster/partition": "tiny"})
    start = DagsterEvent(DagsterEventType.RUN_START.value, job_name=job.name, pid=os.getpid())  # its worker: us
    instance.report_dagster_event(start, run.run_id)
    monkeypatch.setattr(recovery, "worker_is_alive", lambda pid, started: False)  # as after a SIGKILL

    assert recovery.recover_dead_runs(instance, log=lambda _: None) == [run.run_id]
    recovered = instance.get_run_by_id(run.run_id)
    assert recovered.status == dg.DagsterRunStatus.FAILURE
    assert recovered.tags[WILL_RETRY_TAG] == "true"
    assert should_retry(recovered, instance)


def test_user_errors_are_found_through_raise_from():
    try:
        try:
            raise ConfigError("experiments/a.yaml: not valid YAML")
        except ConfigError as err:
            raise RuntimeError("loading failed") from err
    except RuntimeError as wrapped:
        assert isinstance(recovery.user_error(wrapped), ConfigError)
    assert isinstance(recovery.user_error(ExperimentKeyError("../x")), ExperimentKeyError)
    assert recovery.user_error(MemoryError()) is None
    assert recovery.user_error(FileNotFoundError("nothing stored")) is None  # upstream not materialized yet
    assert recovery.user_error(None) is None
