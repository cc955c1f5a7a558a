"""One bad file never stops the others, and a bad value fails before work: the sensor and `make run` with a
poisoned experiment file registered beside a good one, a value that only the data can refuse, and a run of an
experiment whose every stage is current (reported, not rewritten)."""

import json
import os
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml
from PIL import Image

from gan_assets.assets.experiment_config import config_key, experiments_partitions, observed_version, section_of
from gan_assets.core.evaluation.verdict import GRADES
from gan_assets.resources.store import ExperimentStore
from pipelines.automation.sensors import config_change_sensor
from pipelines.cli import run_experiment
from tests.conftest import TINY_EXPERIMENT

POISONED = {
    "list-key": "? [a, b]\n: 1\n",
    "deep": "seed: " + "[" * 400 + "]" * 400 + "\n",
    "bomb": "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcde", "bcdef")),
    "late-seed": "seed: -1\n",
}


def write_world(folder: Path, good: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{good}.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    for name, text in POISONED.items():
        (folder / f"{name}.yaml").write_text(text)
    os.mkfifo(folder / "fifo.yaml")  # opening it would wait forever: it must never be opened


def test_the_sensor_observes_the_good_experiment_beside_every_poisoned_one(tmp_path):
    write_world(tmp_path / "experiments", "good")
    store = ExperimentStore(experiments_dir=str(tmp_path / "experiments"), storage_root=str(tmp_path / "store"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["good", "fifo", *POISONED])
    result = config_change_sensor(dg.build_sensor_context(instance=instance, resources={"store": store}))
    observed = {(section_of(event.asset_key), event.partition) for event in result.asset_events}
    assert observed == {(section, "good") for section in
                        ("seed", "dataset", "reference_batch", "model", "training", "evaluator", "evaluation", "gallery")}
    # unchanged files: the next tick skips, even with the FIFO registered
    again = config_change_sensor(dg.build_sensor_context(instance=instance, resources={"store": store},
                                                         cursor=result.cursor))
    assert again.skip_reason is not None and "unchanged" in again.skip_reason.skip_message


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """`make run` of a good experiment while poisoned files are registered in the same folder and instance."""
    root = tmp_path_factory.mktemp("hostile")
    write_world(root / "experiments", "good-beside-poison")
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(experiments_partitions.name, ["fifo", *POISONED])
    return root


def run(root: Path, monkeypatch, capfd, *flags: str) -> tuple[int, list[str], str]:
    monkeypatch.setattr("pipelines.definitions.STORAGE_ROOT", root / "store")
    code = run_experiment.main([str(root / "experiments" / "good-beside-poison.yaml"), *flags])
    captured = capfd.readouterr()
    return code, captured.out.strip().splitlines(), captured.err


def stored_files(root: Path) -> dict[str, int]:
    """Every file under the storage root (snapshots, asset files, run directories), with its mtime."""
    return {str(p): p.stat().st_mtime_ns for p in (root / "store").rglob("*") if p.is_file()}


def test_make_run_of_a_good_experiment_beside_poisoned_ones(ran, monkeypatch, capfd):
    code, out, err = run(ran, monkeypatch, capfd)
    assert code == 0 and "Traceback" not in err
    summary = json.loads(out[-1])
    assert summary["materialized"] == list(run_experiment.STAGES) and Path(summary["gallery_html"]).is_file()
    for name in POISONED:  # each named once per observation, as a warning; none stops the run
        assert f"not observing {name}:" in err
    assert "leaderboard: updated" in err  # the page is there after `make run`, listing every registered experiment
    with dg.DagsterInstance.get() as instance:
        assert observed_version(instance, config_key("seed"), "good-beside-poison") is not None
        assert observed_version(instance, config_key("seed"), "late-seed") is None
        [board] = instance.fetch_materializations(dg.AssetKey("leaderboard"), limit=1).records
    metadata = board.asset_materialization.metadata
    rows = {r.data["experiment"]: r.data for r in metadata["leaderboard"].value.records}
    status = {r.data["experiment"]: r.data["status"] for r in metadata["leaderboard_runs"].value.records}
    assert status["good-beside-poison"] == "scored" and rows["good-beside-poison"]["grade"] in GRADES
    assert status["late-seed"] == "no scores recorded" and rows["late-seed"]["fd"] is None
    assert metadata["ranking"].value.startswith("1. **good-beside-poison**: ")


def test_a_second_run_reports_every_stage_current_and_rewrites_nothing(ran, monkeypatch, capfd):
    before = stored_files(ran)
    code, out, err = run(ran, monkeypatch, capfd)
    assert code == 0 and "every stage is current" in err and "leaderboard" not in err  # the board too is current
    assert json.loads(out[-1])["materialized"] == [] and stored_files(ran) == before


def test_fresh_retrains_from_scratch_and_rescores(ran, monkeypatch, capfd):
    code, out, _ = run(ran, monkeypatch, capfd, "--fresh")
    assert code == 0 and json.loads(out[-1])["materialized"] == ["gan_checkpoints", "checkpoint_scores",
                                                                 "exported_generator", "sample_gallery"]
    runs = sorted(p.name for p in (ran / "store" / "experiments" / "good-beside-poison" / "runs").iterdir())
    assert len(runs) == 2 and "-fresh-" in runs[1]


def write_images(folder: Path, classes: int, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for k in range(classes):
        (folder / f"class{k}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"class{k}" / f"{i}.png")


def test_a_value_only_the_data_refuses_fails_at_ingestion_in_one_line_keeping_what_was_stored(
        tmp_path, monkeypatch, capfd):
    write_images(tmp_path / "images", classes=2, per_class=10)  # 16 train, 4 held-out images
    raw = {**TINY_EXPERIMENT, "dataset": {"source": "image_folder", "root": str(tmp_path / "images"), "image_size": 8},
           "evaluation": {"num_samples": 64, "metrics": ["fd"]}}
    (tmp_path / "experiments").mkdir()
    path = tmp_path / "experiments" / "folder.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr("pipelines.definitions.STORAGE_ROOT", tmp_path / "store")
    assert run_experiment.main([str(path)]) == 0
    capfd.readouterr()
    stored = tmp_path / "store" / "experiments" / "folder" / "dataset.parquet"
    before = stored.read_bytes()
    image = tmp_path / "images" / "class0" / "0.png"  # saved again, same pixels: re-read, and nothing else reruns
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    assert run_experiment.main([str(path)]) == 0
    assert json.loads(capfd.readouterr().out.strip().splitlines()[-1])["materialized"] == ["dataset"]
    path.write_text(yaml.safe_dump({**raw, "gallery": {**raw["gallery"], "neighbours": 20}}))
    assert run_experiment.main([str(path)]) == 2
    err = capfd.readouterr().err
    # only the gallery reads the edited section, so it is the stage that refuses it, before drawing anything
    assert "error: folder: sample_gallery: gallery.neighbours 20 is larger than the 16 training examples" in err
    assert "Traceback" not in err and "Stack Trace" not in err
    assert stored.read_bytes() == before


def test_make_run_passes_a_path_with_spaces_as_one_file_and_fresh_as_a_flag(tmp_path):
    import subprocess

    path = tmp_path / "my experiments" / "tiny.yaml"
    dry = subprocess.run(["make", "-n", "run", f"EXPERIMENT={path}", "FRESH=1", f"DAGSTER_HOME={tmp_path}"],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], check=True).stdout
    [command] = [line for line in dry.splitlines() if "pipelines.cli.run_experiment" in line]
    assert f'"{path}"' in command and command.endswith("--fresh")


def test_make_run_refuses_a_file_the_pipeline_would_not_read(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for path in (tmp_path / "a" / "x.yml", tmp_path / "a" / "x.yaml", tmp_path / "b" / "y.yaml"):
        path.write_text("seed: 1\n")
    assert run_experiment.main([str(tmp_path / "a" / "x.yml")]) == 2  # validated x.yml, would train x.yaml
    assert "x.yml: an experiment file is named <key>.yaml (this one ends in '.yml')" in capsys.readouterr().err
    assert run_experiment.main([str(tmp_path / "a" / "x.yaml"), str(tmp_path / "b" / "y.yaml")]) == 2
    assert "the experiment files are in 2 folders" in capsys.readouterr().err
