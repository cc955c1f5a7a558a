"""Scheduled retraining: stale or missing experiments weekly, and a forced retrain from scratch."""

import datetime
import json

import dagster as dg
import pytest
import yaml

from pipelines.automation.schedules import force_retrain_schedule, weekly_retrain
from tests.conftest import TINY_EXPERIMENT
from tests.pipelines.automation.harness import AutomationHarness

MONDAY = datetime.datetime(2026, 1, 5, 3, 0, tzinfo=datetime.timezone.utc)


def requests_of(result) -> dict[str, str]:
    return {r.partition_key: r.tags.get("retrain_reason") for r in result} if isinstance(result, list) else {}


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:  # schedule contexts need a persistent instance
        yield test_instance


@pytest.fixture
def harness(tmp_path, instance) -> AutomationHarness:
    """One tiny experiment, trained and scored."""
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    trained = AutomationHarness(tmp_path / "store", tmp_path / "experiments", instance)
    trained.add_experiment("tiny")
    trained.settle()
    return trained


def test_weekly_retrain_picks_missing_and_stale_experiments(tmp_path, harness):
    context = dg.build_schedule_context(instance=harness.instance, scheduled_execution_time=MONDAY)
    assert isinstance(weekly_retrain(context), dg.SkipReason)  # everything current

    (tmp_path / "experiments" / "new.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    harness.add_experiment("new")
    assert requests_of(weekly_retrain(context)) == {"new": "missing"}

    edited = {**TINY_EXPERIMENT, "training": {**TINY_EXPERIMENT["training"], "steps": 30}}
    (tmp_path / "experiments" / "tiny.yaml").write_text(yaml.safe_dump(edited))
    harness.observe()  # the edit is seen, nothing has retrained yet
    assert requests_of(weekly_retrain(context)) == {"new": "missing", "tiny": "stale: config/training"}


def test_forced_retrain_trains_from_scratch_in_a_new_run_directory(tmp_path, harness):
    before = json.loads((tmp_path / "store/experiments/tiny/gan_checkpoints.json").read_text())["run_dir"]

    schedule = force_retrain_schedule(["tiny", "not-registered"])
    context = dg.build_schedule_context(instance=harness.instance, scheduled_execution_time=MONDAY)
    [request] = schedule(context)
    assert request.partition_key == "tiny" and request.run_config["ops"]["gan_checkpoints"]["config"]["fresh_run"]
    result = harness.defs.resolve_job_def("experiment").execute_in_process(
        instance=harness.instance, partition_key="tiny", run_config=request.run_config)
    after = json.loads((tmp_path / "store/experiments/tiny/gan_checkpoints.json").read_text())["run_dir"]
    assert after != before and after.endswith(f"-fresh-{result.run_id[:8]}")
    assert isinstance(force_retrain_schedule(["other"])(context), dg.SkipReason)
