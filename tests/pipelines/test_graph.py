"""The whole graph materialized into a temp dir with a tiny experiment: files, metadata, versions."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from gan_assets.assets.experiment_config import experiments_partitions
from gan_assets.core.evaluation.verdict import GRADES
from gan_assets.resources.store import ExperimentStore
from pipelines.automation.sensors import experiment_files_sensor
from pipelines.cli import gallery, run_experiment
from pipelines.definitions import GAN_ASSETS, build_definitions, defs

ASSET_FILES = {"dataset": "parquet", "reference_batch": "parquet", "evaluator": "safetensors",
               "gan_checkpoints": "json", "checkpoint_scores": "parquet", "sample_gallery": "json",
               "exported_generator": "json"}


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    sections = {"seed", "dataset", "reference_batch", "model", "training", "evaluator", "evaluation", "gallery"}
    assert keys == set(ASSET_FILES) | {"leaderboard", "cost_response_curves", "divergence_fits"} | {
        f"config/{section}_yaml" for section in sections}
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()}
    assert parents["gan_checkpoints"] == {"dataset", "reference_batch", "config/model_yaml", "config/training_yaml",
                                          "config/seed_yaml"}
    assert parents["sample_gallery"] == {"gan_checkpoints", "reference_batch", "checkpoint_scores", "evaluator",
                                         "dataset", "config/gallery_yaml", "config/evaluation_yaml", "config/seed_yaml"}
    assert parents["exported_generator"] == {"gan_checkpoints", "checkpoint_scores", "reference_batch",
                                             "config/evaluation_yaml"}
    assert defs.resolve_sensor_def("automation").default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_schedule_def("weekly_retrain").default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_job_def("experiment") is not None
    for asset in GAN_ASSETS:
        assert all(v is not None for v in asset.code_versions_by_key.values())  # explicit code versions


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    import yaml

    from tests.conftest import TINY_EXPERIMENT

    root = tmp_path_factory.mktemp("graph")
    (root / "experiments").mkdir()
    (root / "experiments" / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    definitions = build_definitions(root / "store", root / "experiments")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["tiny"])
    job = definitions.resolve_job_def("experiment")
    first = job.execute_in_process(partition_key="tiny", instance=instance)
    second = job.execute_in_process(partition_key="tiny", instance=instance)
    return root, first, second


def versions(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    out = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        out[materialization.asset_key.to_user_string()] = materialization.tags["dagster/data_version"]
    return out


def test_graph_writes_every_asset_to_disk(materialized):
    root, first, _ = materialized
    assert first.success
    folder = root / "store" / "experiments" / "tiny"
    for asset, ext in ASSET_FILES.items():
        assert (folder / f"{asset}.{ext}").is_file(), asset
    manifest = json.loads((folder / "gan_checkpoints.json").read_text())
    run_dir = root / "store" / manifest["run_dir"]  # relative to the storage root: the folder can move
    assert run_dir.parent == folder / "runs"
    for entry in manifest["checkpoints"]:
        assert (run_dir / entry["generator"]).is_file() and (run_dir / entry["state"]).is_file()
    scores = pd.read_parquet(folder / "checkpoint_scores.parquet")
    assert scores["name"].tolist() == ["step_000010", "step_000020", "real_floor"]
    gallery = json.loads((folder / "sample_gallery.json").read_text())
    assert Path(gallery["best"]).is_file() and Path(gallery["progress"]).is_file()
    export = json.loads((folder / "exported_generator.json").read_text())  # the export folder, beside the runs
    assert Path(export["path"]).parent == folder / "export" and sorted(export["files"]) == [
        "card.json", "generator.pt2", "generator.safetensors"]


def test_evaluator_check_is_recorded(materialized):
    _, first, _ = materialized
    check = checks_by_name(first)["accuracy_at_least_95"]
    assert check.passed == (check.metadata["held_out_accuracy"].value >= 0.95)


def test_data_versions_are_content_hashes(materialized):
    """Identical inputs give identical versions: a rerun changes nothing downstream."""
    _, first, second = materialized
    assert versions(first) == versions(second)
    assert len(versions(first)["dataset"]) == 64  # sha256 hex


def test_sensor_registers_new_files_and_forgets_deleted_ones(tmp_path):
    (tmp_path / "a.yaml").write_text("seed: 1\n")
    (tmp_path / "b.yaml").write_text("seed: 2\n")
    store = ExperimentStore(experiments_dir=str(tmp_path), storage_root=str(tmp_path / "store"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(experiments_partitions.name, ["gone", "a"])
        context = dg.build_sensor_context(instance=instance, resources={"store": store})
        result = experiment_files_sensor(context)
        added = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
        deleted = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)]
        assert [list(r.partition_keys) for r in added] == [["b"]]
        assert [list(r.partition_keys) for r in deleted] == [["gone"]]


def test_run_command_prints_one_json_line_per_experiment_and_the_leaderboard(tmp_path, capsys, monkeypatch):
    import yaml

    from tests.conftest import TINY_EXPERIMENT

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    minimax = {**TINY_EXPERIMENT, "training": {**TINY_EXPERIMENT["training"], "generator_loss": "minimax"}}
    (tmp_path / "tiny-minimax.yaml").write_text(yaml.safe_dump(minimax))
    monkeypatch.setattr("pipelines.definitions.STORAGE_ROOT", tmp_path / "store")
    files = [str(tmp_path / "tiny.yaml"), str(tmp_path / "tiny-minimax.yaml")]
    assert run_experiment.main([*files, "--leaderboard"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summaries = [json.loads(line) for line in lines[:2]]
    assert [s["experiment"] for s in summaries] == ["tiny", "tiny-minimax"]
    summary = summaries[0]
    assert summary["best_checkpoint"] in ("step_000010", "step_000020")
    assert {"fd", "class_coverage", "class_kl"} <= set(summary["scores"]) == set(summary["real_floor"])
    verdict = summary["verdict"]  # the verdict checkpoint_scores' page shows, by value
    assert verdict["grade"] in GRADES and verdict["checkpoint"] == summary["best_checkpoint"]
    assert verdict["fd_ratio"] == pytest.approx(summary["scores"]["fd"] / summary["real_floor"]["fd"], rel=1e-3, abs=0.01)
    assert verdict["reasons"] and verdict["comparisons"]["fd"]["ratio"] == verdict["fd_ratio"]
    assert Path(summary["gallery"]).is_file() and Path(summary["scores_table"]).is_file()
    assert 0 < summary["evaluator_accuracy"] <= 1
    # `make gallery` names the same page the JSON line does
    assert gallery.main(["tiny"]) == 0 and capsys.readouterr().out.strip() == summary["gallery_html"]
    assert Path(summary["gallery_html"]).read_text().startswith("<!DOCTYPE html>")
    assert gallery.main(["never-run"]) == 2 and "no gallery for 'never-run' yet" in capsys.readouterr().err
    table = "\n".join(lines[2:])  # the leaderboard, with the one config field that differs
    assert "tiny-minimax" in table and "config.training.generator_loss" in table and "non_saturating" in table


def test_run_command_rejects_bad_config_before_any_work(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("training:\n  lr_g: -1\n")
    assert run_experiment.main([str(tmp_path / "bad.yaml")]) == 2
    assert "training.lr_g" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def checks_by_name(result: dg.ExecuteInProcessResult) -> dict:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def test_regression_check_compares_with_the_previous_materialization(materialized):
    _, first, second = materialized
    assert checks_by_name(first)["no_regression"].metadata["previous"].value == "none"
    check = checks_by_name(second)["no_regression"]
    assert check.passed and check.metadata["relative_change"].value == pytest.approx(0.0)


def test_non_finite_weights_are_never_stored_and_keep_evaluation_from_running(tmp_path, monkeypatch):
    import yaml

    from tests.conftest import TINY_EXPERIMENT

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    monkeypatch.setattr("gan_assets.core.training.report.weights_are_finite",
                        lambda manifest: (False, {"non_finite_tensors": 1, "first": ["step_000020.generator:w"]}))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["tiny"])
    job = build_definitions(tmp_path / "store", tmp_path).resolve_job_def("experiment")
    result = job.execute_in_process(partition_key="tiny", instance=instance, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "gan_checkpoints" and "non-finite weights" in str(failure.event_specific_data.error)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not materialized & {"gan_checkpoints", "checkpoint_scores", "sample_gallery"}
    assert not (tmp_path / "store" / "experiments" / "tiny" / "gan_checkpoints.json").exists()  # no value stored


def test_dagster_cli_materializes_any_selection(tmp_path):
    """`dagster asset materialize` from the shell, for one experiment and a selection."""
    import os
    import subprocess
    import sys

    import yaml

    from tests.conftest import TINY_EXPERIMENT

    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    with dg.DagsterInstance.get() as instance:  # the session's throw-away DAGSTER_HOME
        if not instance.has_dynamic_partition(experiments_partitions.name, "tiny"):
            instance.add_dynamic_partitions(experiments_partitions.name, ["tiny"])
    env = {**os.environ, "GAN_STORAGE_ROOT": str(tmp_path / "store"), "GAN_EXPERIMENTS_DIR": str(tmp_path / "experiments")}
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions",
               "--select", "dataset,reference_batch", "--partition", "tiny"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / "store" / "experiments" / "tiny"
    assert sorted(p.name for p in folder.glob("*.parquet")) == ["dataset.parquet", "reference_batch.parquet"]
