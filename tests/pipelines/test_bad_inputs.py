"""Hostile inputs around the graph: bad YAML, bad experiment names, a moved data directory, an unscored
experiment on the leaderboard, a device this machine lacks. Each fails clearly or is contained."""

import logging
import re
import shutil

import dagster as dg
import pytest
import yaml

from gan_assets.assets.config_sources import parse_registered, section_versions
from gan_assets.assets.experiment_config import experiments_partitions
from gan_assets.core.evaluation.verdict import GRADES
from gan_assets.core.storage import ExperimentKeyError, check_experiment_key
from gan_assets.resources.store import ExperimentStore
from pipelines.automation.sensors import experiment_files_sensor
from pipelines.cli import run_experiment
from pipelines.definitions import GAN_ASSETS, build_definitions
from tests.conftest import TINY_EXPERIMENT

BAD_YAML = {  # file text → what the error names
    "seed: 1\nseed: 2\n": "line 2, column 1: key 'seed' appears twice (first on line 1)",
    "training:\n  steps: 3\ntraining:\n  steps: 4\n": "key 'training' appears twice",
    "training:\n\tsteps: 3\n": "never tabs",
    "seed: [1\n": "expected ',' or ']'",
    "seed: !!python/object/apply:os.system ['touch x']\n": "could not determine a constructor",
}


@pytest.mark.parametrize("text", list(BAD_YAML))
def test_bad_yaml_is_a_config_error_naming_the_file_and_line(tmp_path, capsys, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert run_experiment.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}:" in err and BAD_YAML[text] in err and "Traceback" not in err


def test_non_utf8_yaml_is_named(tmp_path, capsys):
    (tmp_path / "latin.yaml").write_bytes(b"seed: 1 # \xe9t\xe9\n")
    assert run_experiment.main([str(tmp_path / "latin.yaml")]) == 2
    assert "latin.yaml: not UTF-8 text" in capsys.readouterr().err


def test_one_broken_file_never_hides_the_others_edits(tmp_path):
    (tmp_path / "good.yaml").write_text("seed: 4\n")
    (tmp_path / "broken.yaml").write_text("training:\n\tsteps: 3\n")
    store = ExperimentStore(experiments_dir=str(tmp_path), storage_root=str(tmp_path / "store"))
    warnings = []
    log = type("Log", (), {"warning": lambda self, message: warnings.append(message)})()
    configs = parse_registered(store, {"good", "broken"}, log)
    versions = section_versions(store, "seed", configs)
    assert list(versions) == ["good"] and len(warnings) == 1 and "broken.yaml" in warnings[0]
    again = parse_registered(store, {"good", "broken"}, log)  # unchanged bytes: the parse is reused, said once
    assert len(warnings) == 1 and again["good"] == configs["good"] and again["good"] is not configs["good"]


@pytest.mark.parametrize("key", ["..", ".", "...", "a/b", "../x", ".hidden", "", "a\\b", "x" * 200])
def test_bad_experiment_keys_are_refused(key):
    with pytest.raises(ExperimentKeyError, match="is not allowed"):
        check_experiment_key(key)


def test_a_file_named_dot_dot_dot_is_neither_registered_nor_run(tmp_path, capsys):
    (tmp_path / "...yaml").write_text("seed: 1\n")  # its key would be `..`: the storage root itself
    (tmp_path / "fine.yaml").write_text("seed: 1\n")
    store = ExperimentStore(experiments_dir=str(tmp_path), storage_root=str(tmp_path / "store"))
    result = experiment_files_sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(),
                                                             resources={"store": store}))
    [added] = result.dynamic_partitions_requests
    assert list(added.partition_keys) == ["fine"]
    assert run_experiment.main([str(tmp_path / "...yaml")]) == 2
    assert "experiment key '..' is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_a_key_added_through_the_api_with_a_slash_is_rejected_by_the_assets(tmp_path):
    (tmp_path / "experiments").mkdir()
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["../escape"])
    job = build_definitions(tmp_path / "store", tmp_path / "experiments").resolve_job_def("experiment")
    result = job.execute_in_process(partition_key="../escape", instance=instance, raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures and all("experiment key '../escape' is not allowed" in str(e.event_specific_data.error)
                            for e in failures)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "store").exists()


def test_a_cuda_device_the_machine_lacks_fails_before_any_work(tmp_path, capsys, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    lacking = "GAN_DEVICE is 'cuda', but this machine has 0 CUDA device(s)"
    monkeypatch.setenv("GAN_DEVICE", "cuda")
    assert run_experiment.main([str(tmp_path / "tiny.yaml")]) == 2
    assert lacking in capsys.readouterr().err
    monkeypatch.setenv("GAN_DEVICE", "auto")  # --device sets GAN_DEVICE for the run (undone by monkeypatch)
    assert run_experiment.main([str(tmp_path / "tiny.yaml"), "--device", "cuda"]) == 2
    assert lacking in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_an_old_file_that_sets_the_device_fails_before_any_work_saying_where_it_went(tmp_path, capsys):
    path = tmp_path / "gpu.yaml"
    path.write_text("training:\n  device: cuda\n")
    assert run_experiment.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: training.device: 'cuda' is no longer read: the device is a deployment setting" in err
    assert "GAN_DEVICE=cuda" in err and "Traceback" not in err


def test_a_device_torch_does_not_know_is_refused_wherever_it_is_set(tmp_path, capsys, monkeypatch):
    """`tpu` as the torch_device resource's name: in code, from GAN_DEVICE, or in the launchpad's run config."""
    import pydantic

    from gan_assets.resources.torch_device import TorchDevice

    unknown = "device 'tpu' is not one of auto, cpu, cuda, cuda:N (set by GAN_DEVICE, or the torch_device resource"
    with pytest.raises(pydantic.ValidationError, match=re.escape(unknown)):
        TorchDevice(name="tpu")
    with pytest.raises(pydantic.ValidationError, match=re.escape(unknown)):
        build_definitions(tmp_path / "store", tmp_path, device="tpu")
    monkeypatch.setenv("GAN_DEVICE", "tpu")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    assert run_experiment.main([str(tmp_path / "tiny.yaml")]) == 2
    assert f"error: {unknown}" in capsys.readouterr().err
    monkeypatch.delenv("GAN_DEVICE")
    defs = build_definitions(tmp_path / "store", tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["tiny"])
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, partition_key="tiny", asset_selection=[dg.AssetKey("gan_checkpoints")], raise_on_error=False,
        run_config={"resources": {"torch_device": {"config": {"name": "tpu"}}}})
    assert not result.success
    assert any(unknown in str(e.event_specific_data.error) for e in result.all_events if e.is_failure)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """One experiment through the whole graph; a second registered but never scored."""
    root = tmp_path_factory.mktemp("moved")
    (root / "experiments").mkdir()
    (root / "experiments" / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    (root / "experiments" / "unscored.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["tiny", "unscored"])
    job = build_definitions(root / "store", root / "experiments").resolve_job_def("experiment")
    assert job.execute_in_process(partition_key="tiny", instance=instance).success
    return root, instance


def test_one_unscored_experiment_never_fails_the_leaderboard(scored):
    root, instance = scored
    defs = build_definitions(root / "store", root / "experiments")
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey("leaderboard")])
    table = result.output_for_node("leaderboard")
    assert table["experiment"].tolist() == ["tiny", "unscored"]
    # not run yet is routine (a debug line), never a warning in `make run`'s output
    logged = {entry.user_message: entry.level for entry in instance.all_logs(result.run_id) if "left out" in entry.user_message}
    assert list(logged.values()) == [logging.DEBUG] and "'unscored' left out: nothing stored" in next(iter(logged))
    assert table["status"].tolist() == ["scored", "no scores recorded"]
    assert table.loc[0, "fd"] > 0 and table["fd"].isna().tolist() == [False, True]
    # the scored one carries the verdict its pages show; the unscored one none
    assert table.loc[0, "grade"] in GRADES and table["grade"].isna().tolist() == [False, True]
    assert table.loc[0, "fd_ratio"] == pytest.approx(table.loc[0, "fd"] / table.loc[0, "real_floor_fd"], rel=1e-3, abs=0.01)


def test_a_moved_data_directory_is_read_where_it_is_now(scored, tmp_path):
    root, instance = scored
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    shutil.rmtree(root / "store" / "experiments" / "tiny" / "runs")  # the old location is gone
    defs = build_definitions(moved / "store", moved / "experiments")
    evaluation = [a.key for a in GAN_ASSETS if a.key.to_user_string() in ("checkpoint_scores", "sample_gallery")]
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, partition_key="tiny", asset_selection=evaluation)
    assert result.success
    gallery = result.output_for_node("sample_gallery")
    assert gallery["best"].startswith(str(moved / "store" / "experiments" / "tiny" / "runs"))
