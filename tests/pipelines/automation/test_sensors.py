"""Config sources, and the config-change sensor that observes them without a run.

The sensor observes when a registered experiment file's bytes change, as runless asset events that
carry the same data versions the `observe_config` job records.
"""

import dagster as dg
import pytest
import yaml

from gan_assets.assets.config_sources import config_sources
from gan_assets.assets.experiment_config import (
    CONFIG_SECTIONS,
    config_key,
    experiments_partitions,
    observed_version,
    section_of,
)
from gan_assets.resources.store import ExperimentStore
from pipelines.automation.sensors import config_change_sensor
from pipelines.definitions import GAN_ASSETS, build_definitions, defs
from tests.conftest import TINY_EXPERIMENT


@pytest.fixture
def instance():
    return dg.DagsterInstance.ephemeral()


def evaluate(tmp_path, instance, cursor):
    store = ExperimentStore(experiments_dir=str(tmp_path), storage_root=str(tmp_path / "store"))
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": store})
    return config_change_sensor.evaluate_tick(context)


def observed(data) -> dict[tuple[str, str], str]:
    """{(section, partition): data version} of the sensor's observations."""
    assert all(isinstance(event, dg.AssetObservation) for event in data.asset_events)
    return {(section_of(event.asset_key), event.partition): event.tags["dagster/data_version"]
            for event in data.asset_events}


def register(instance, *keys):
    instance.add_dynamic_partitions(experiments_partitions.name, list(keys))


def test_a_changed_file_is_observed_for_every_section_and_an_unchanged_one_skips(tmp_path, instance):
    (tmp_path / "a.yaml").write_text("seed: 1\n")
    (tmp_path / "b.yaml").write_text("seed: 2\n")
    register(instance, "a", "b")
    first = evaluate(tmp_path, instance, None)
    assert not first.run_requests  # runless: nothing to queue before automation can react
    assert set(observed(first)) == {(section, key) for section in CONFIG_SECTIONS for key in ("a", "b")}
    assert observed(first)[("seed", "a")] != observed(first)[("seed", "b")]
    for section in CONFIG_SECTIONS:  # each version backed by the snapshot the assets will read
        version = observed(first)[(section, "a")]
        assert (tmp_path / "store" / "config_snapshots" / section / f"{version}.json").is_file()
    unchanged = evaluate(tmp_path, instance, first.cursor)
    assert unchanged.skip_message and not unchanged.asset_events and unchanged.cursor == first.cursor


def test_a_reformatted_file_is_observed_with_the_same_data_versions(tmp_path, instance):
    (tmp_path / "a.yaml").write_text("seed: 1\nmodel: {z_dim: 16}\n")
    register(instance, "a")
    first = evaluate(tmp_path, instance, None)
    (tmp_path / "a.yaml").write_text("# same values\nmodel:\n  z_dim: 16\nseed: 1\n")
    again = evaluate(tmp_path, instance, first.cursor)
    assert again.cursor != first.cursor and observed(again) == observed(first)  # observed; nothing changed
    (tmp_path / "a.yaml").write_text("seed: 1\nmodel: {z_dim: 32}\n")
    edited = observed(evaluate(tmp_path, instance, again.cursor))
    assert {s for s in CONFIG_SECTIONS if edited[(s, "a")] != observed(first)[(s, "a")]} == {"model"}


def test_only_registered_files_count_so_a_late_registration_is_observed(tmp_path, instance):
    (tmp_path / "a.yaml").write_text("seed: 1\n")
    register(instance, "a")
    first = evaluate(tmp_path, instance, None)
    (tmp_path / "b.yaml").write_text("seed: 2\n")  # saved, but experiment_files_sensor has not ticked yet
    early = evaluate(tmp_path, instance, first.cursor)
    assert early.skip_message and early.cursor == first.cursor
    register(instance, "b")  # registered after this sensor's tick: still observed on the next one
    late = evaluate(tmp_path, instance, early.cursor)
    assert {key for _, key in observed(late)} == {"a", "b"}


def test_the_sensor_records_what_the_observe_config_job_records(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    by_sensor, by_job = dg.DagsterInstance.ephemeral(), dg.DagsterInstance.ephemeral()
    for instance in (by_sensor, by_job):
        register(instance, "tiny")
    for event in evaluate(tmp_path, by_sensor, None).asset_events:
        by_sensor.report_runless_asset_event(event)  # what the sensor daemon does with them
    definitions = build_definitions(tmp_path / "store", tmp_path)
    # Entered, so Dagster's current defs-state storage is by_job's: otherwise it can still be that of an instance an
    # earlier test entered and never exited, gone by now ("Attempted to resolve undefined DagsterInstance weakref").
    with by_job:
        assert definitions.resolve_job_def("observe_config").execute_in_process(instance=by_job).success
        for section in CONFIG_SECTIONS:
            key = config_key(section)
            assert observed_version(by_sensor, key, "tiny") == observed_version(by_job, key, "tiny") is not None


def test_config_sources_stand_apart_from_stage_assets_in_the_lineage_view():
    graph = defs.resolve_asset_graph()
    sources = {source.key for source in config_sources}
    assert sources == {config_key(section) for section in CONFIG_SECTIONS}
    for key in graph.get_all_asset_keys():
        node, is_source = graph.get(key), key in sources
        assert (node.group_name == "config") == is_source, key
        assert (key.path[0] == "config") == is_source, key
        assert ("yaml" in node.kinds) == is_source, key
    stages = {key for asset in GAN_ASSETS for key in asset.keys}
    assert stages and not stages & sources
    assert {key.to_user_string() for key in stages} == {  # the stage assets keep their names
        "dataset", "reference_batch", "evaluator", "gan_checkpoints", "checkpoint_scores", "exported_generator",
        "sample_gallery"}


def test_each_yaml_file_is_validated_once_per_change(tmp_path, monkeypatch):
    """Eight sections, two files, a sensor tick and two observe_config runs: each file is validated once, and
    again only when its bytes change (a 1,000-file folder costs reads, not parses, on every tick)."""
    from gan_assets.core import config

    parsed = []
    real = config.parse_experiment
    monkeypatch.setattr(config, "parse_experiment", lambda raw, origin="": parsed.append(origin) or real(raw, origin))
    for name in ("tiny", "other"):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    instance = dg.DagsterInstance.ephemeral()
    register(instance, "tiny", "other")
    assert len(evaluate(tmp_path, instance, None).asset_events) == 2 * len(CONFIG_SECTIONS)
    assert sorted(parsed) == [str(tmp_path / "other.yaml"), str(tmp_path / "tiny.yaml")]
    parsed.clear()
    with instance:
        job = build_definitions(tmp_path / "store", tmp_path).resolve_job_def("observe_config")
        assert job.execute_in_process(instance=instance).success
        assert parsed == []  # unchanged bytes: the parse of the tick is reused by all eight observations
        (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**TINY_EXPERIMENT, "seed": 5}))
        assert job.execute_in_process(instance=instance).success
    assert parsed == [str(tmp_path / "tiny.yaml")]  # an edit between runs is seen, once
