"""Scheduled retraining: stale experiments weekly (never-trained ones only with the switch on), and a forced
retrain from scratch of the experiments GAN_FORCE_RETRAIN names."""

import datetime
import json

import dagster as dg
import pytest
import yaml

from pipelines.automation.schedules import force_retrain_schedule, forced_experiments_from_env, latest_version
from pipelines.definitions import build_definitions
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


def on_monday(instance: dg.DagsterInstance) -> dg.ScheduleEvaluationContext:
    """A schedule context at Monday 03:00, for a `with` block: the context enters an instance of its own, and left to
    the garbage collector its exit can come after the test's instance is gone and make that dead instance Dagster's
    current one ("Attempted to resolve undefined DagsterInstance weakref" in later tests)."""
    return dg.build_schedule_context(instance=instance, scheduled_execution_time=MONDAY)


def weekly(tmp_path, train_new_experiments: bool) -> dg.ScheduleDefinition:
    """`weekly_retrain` as `build_definitions` wires it for the switch `train_new_experiments` (the harness's dirs)."""
    defs = build_definitions(tmp_path / "store", tmp_path / "experiments", train_new_experiments)
    return defs.resolve_schedule_def("weekly_retrain")


def test_weekly_retrain_picks_stale_experiments_and_new_ones_only_when_switched_on(tmp_path, harness):
    waits, trains_new = weekly(tmp_path, False), weekly(tmp_path, True)
    assert "never-trained experiments wait for a click" in waits.description
    assert "also trains never-trained experiments" in trains_new.description
    with on_monday(harness.instance) as context:
        assert isinstance(waits(context), dg.SkipReason)  # everything current

        (tmp_path / "experiments" / "new.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
        harness.add_experiment("new")
        harness.instance.add_dynamic_partitions("experiments", ["../x"])  # added through the API, not yet removed
        skipped = waits(context)  # a new file waits for a click, as the automation policy says
        assert isinstance(skipped, dg.SkipReason) and "waiting for a click: ['new']" in skipped.skip_message
        assert requests_of(trains_new(context)) == {"new": "missing"}  # never the hostile key

        edited = {**TINY_EXPERIMENT, "training": {**TINY_EXPERIMENT["training"], "steps": 30}}
        (tmp_path / "experiments" / "tiny.yaml").write_text(yaml.safe_dump(edited))
        harness.observe()  # the edit is seen, nothing has retrained yet
        assert requests_of(waits(context)) == {"tiny": "stale: config/training_yaml"}
        assert requests_of(trains_new(context)) == {"new": "missing", "tiny": "stale: config/training_yaml"}
        # trainings recorded before config sources were named `<section>_yaml` keep their staleness test
        assert latest_version(harness.instance, "config/training", "tiny") == latest_version(
            harness.instance, "config/training_yaml", "tiny") is not None


def test_forced_retrain_trains_from_scratch_in_a_new_run_directory(tmp_path, harness):
    before = json.loads((tmp_path / "store/experiments/tiny/gan_checkpoints.json").read_text())["run_dir"]

    schedule = force_retrain_schedule(["tiny", "not-registered"])
    with on_monday(harness.instance) as context:
        [request] = schedule(context)
        assert isinstance(force_retrain_schedule(["other"])(context), dg.SkipReason)
    assert request.partition_key == "tiny" and request.run_config["ops"]["gan_checkpoints"]["config"]["fresh_run"]
    result = harness.defs.resolve_job_def("experiment").execute_in_process(
        instance=harness.instance, partition_key="tiny", run_config=request.run_config)
    after = json.loads((tmp_path / "store/experiments/tiny/gan_checkpoints.json").read_text())["run_dir"]
    assert after != before and after.endswith(f"-fresh-{result.run_id[:8]}")


def test_forced_retrain_is_off_until_an_experiment_is_chosen(monkeypatch):
    none = force_retrain_schedule([])
    assert none.default_status == dg.DefaultScheduleStatus.STOPPED
    assert none.description == "Retrain from scratch: (none chosen: set GAN_FORCE_RETRAIN)"
    chosen = force_retrain_schedule(["tiny", "other"])
    assert chosen.default_status == dg.DefaultScheduleStatus.RUNNING
    assert chosen.description == "Retrain from scratch: tiny, other"

    monkeypatch.setenv("GAN_FORCE_RETRAIN", " tiny, ,other ")
    assert forced_experiments_from_env() == ["tiny", "other"]
    monkeypatch.setenv("GAN_FORCE_RETRAIN", "")
    assert forced_experiments_from_env() == []


def test_forced_retrain_names_an_invalid_experiment_key_instead_of_requesting_it(instance):
    instance.add_dynamic_partitions("experiments", ["tiny", "../x"])  # a hostile key registered through the API
    only_bad = force_retrain_schedule(["../x"])
    assert only_bad.default_status == dg.DefaultScheduleStatus.STOPPED
    assert "not valid experiment keys, ignored: ['../x']" in only_bad.description
    with on_monday(instance) as context:
        skipped = only_bad(context)
        assert isinstance(skipped, dg.SkipReason) and "'../x' is not a valid experiment key" in skipped.skip_message
        [request] = force_retrain_schedule(["../x", "tiny", "gone"])(context)
        assert request.partition_key == "tiny"
        missing = force_retrain_schedule(["gone"])(context)
        assert "'gone' is not a registered experiment" in missing.skip_message
