"""Assets read the config section versions Dagster observed, not whatever the file holds later."""

import dagster as dg
import yaml

from gan_assets.assets.experiment_config import experiments_partitions, load_config, observed_versions, section_of
from gan_assets.resources.store import ExperimentStore
from pipelines.definitions import build_definitions
from tests.conftest import TINY_EXPERIMENT


def observed_tiny(tmp_path):
    """The tiny experiment registered and its sections observed once: (store, instance)."""
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    store = ExperimentStore(experiments_dir=str(tmp_path), storage_root=str(tmp_path / "store"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["tiny"])
    build_definitions(tmp_path / "store", tmp_path).resolve_job_def("observe_config").execute_in_process(instance=instance)
    return store, instance


def test_load_config_reads_the_observed_snapshot(tmp_path):
    store, instance = observed_tiny(tmp_path)
    edited = {**TINY_EXPERIMENT, "training": {**TINY_EXPERIMENT["training"], "steps": 999}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(edited))  # saved after the observation

    observed = dg.build_asset_context(partition_key="tiny", instance=instance)
    assert load_config(observed, store).training.steps == 20  # the snapshot Dagster recorded
    versions = observed_versions(observed, ("model", "training", "seed"))
    assert set(versions) == {"model", "training", "seed"} and all(len(v) == 64 for v in versions.values())
    never_observed = dg.build_asset_context(partition_key="tiny")
    assert load_config(never_observed, store).training.steps == 999  # no observation: the file


def test_an_asset_reading_an_undeclared_section_fails(tmp_path):
    from gan_assets.assets.experiment_config import config_deps

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    store = ExperimentStore(experiments_dir=str(tmp_path), storage_root=str(tmp_path / "store"))

    @dg.asset(partitions_def=experiments_partitions, deps=config_deps("seed"))
    def sneaky(context: dg.AssetExecutionContext, store: ExperimentStore) -> None:
        config = load_config(context, store)
        assert config.seed == 0  # declared: fine
        config.training.steps  # noqa: B018  (not declared)

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["tiny"])
    result = dg.materialize([sneaky], partition_key="tiny", instance=instance, resources={"store": store},
                            raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "UndeclaredSectionError" in message and "'training'" in message and "['seed']" in message


def test_every_asset_declares_what_it_reads():
    """Each stage's declared sections, as written beside its definition (the lineage users see)."""
    from pipelines.definitions import GAN_ASSETS

    declared = {a.key.to_user_string(): sorted(s for d in a.asset_deps[a.key] if (s := section_of(d)))
                for a in GAN_ASSETS}
    assert declared == {"dataset": ["dataset", "seed"], "reference_batch": ["model", "reference_batch", "seed"],
                        "evaluator": ["evaluator", "seed"], "gan_checkpoints": ["model", "seed", "training"],
                        "checkpoint_scores": ["evaluation", "seed"], "exported_generator": ["evaluation"],
                        "sample_gallery": ["evaluation", "gallery", "seed"]}


def test_a_corrupted_or_edited_snapshot_is_refused_naming_it(tmp_path):
    import pytest

    from gan_assets.core.storage import StoredFileError

    store, instance = observed_tiny(tmp_path)
    [snapshot] = (tmp_path / "store" / "config_snapshots" / "training").glob("*.json")
    context = dg.build_asset_context(partition_key="tiny", instance=instance)
    for text, message in (('{"steps": 5', "is not valid JSON"), ('{"steps": 999}', "does not hold the section value")):
        snapshot.write_text(text)
        with pytest.raises(StoredFileError, match=message) as caught:
            load_config(context, store)
        assert str(snapshot) in str(caught.value)
    build_definitions(tmp_path / "store", tmp_path).resolve_job_def("observe_config").execute_in_process(instance=instance)
    assert load_config(context, store).training.steps == 20  # observing again repaired it
