"""Each asset invoked directly, with a tiny experiment and the IO manager's files out of the way; training
also materialized through Dagster, on the `torch_device` resource."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
import yaml

from gan_assets.assets.checkpoint_scores import checkpoint_scores
from gan_assets.assets.dataset import dataset
from gan_assets.assets.evaluator import evaluator
from gan_assets.assets.experiment_config import experiments_partitions
from gan_assets.assets.gan_checkpoints import TrainingRun, gan_checkpoints
from gan_assets.assets.reference_batch import reference_batch
from gan_assets.assets.sample_gallery import sample_gallery
from gan_assets.core.data.images import decode_table, from_table
from gan_assets.core.data.reference import from_table as reference_from_table
from gan_assets.core.evaluation.verdict import GRADES
from gan_assets.resources.store import ExperimentStore
from gan_assets.resources.torch_device import TorchDevice
from gan_assets.resources.tracking import MlflowTracking
from gan_assets.resources.trainer_launch import TrainerLaunch
from pipelines.definitions import build_definitions
from tests.conftest import TINY_EXPERIMENT


@pytest.fixture(scope="module")
def storage_root(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def store(tmp_path_factory, storage_root) -> ExperimentStore:
    experiments = tmp_path_factory.mktemp("experiments")
    (experiments / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    return ExperimentStore(experiments_dir=str(experiments), storage_root=str(storage_root))


CPU_DEVICE = TorchDevice(name="cpu")


def meta(output, key):
    """A metadata entry's plain value (direct invocation keeps them wrapped)."""
    value = output.metadata[key]
    return getattr(value, "value", value)


def context():
    return dg.build_asset_context(partition_key="tiny")


@pytest.fixture(scope="module")
def upstream(store):
    """dataset → reference_batch → evaluator → gan_checkpoints, invoked in order (shared by the tests)."""
    data = dataset(context(), store=store)
    reference = reference_batch(context(), store=store, dataset=decode_table(data.value))
    model_output, check = list(evaluator(context(), store=store, torch_device=CPU_DEVICE, dataset=decode_table(data.value)))
    checkpoints, *training_checks = gan_checkpoints(context(), config=TrainingRun(), store=store,
                                                    torch_device=CPU_DEVICE, trainer_launch=TrainerLaunch(),
                                                    mlflow_tracking=MlflowTracking(),
                                                    dataset=decode_table(data.value),
                                                    reference_batch=reference_from_table(reference.value))
    assert {c.check_name: c.passed for c in training_checks} == {"finite_weights": True, "d_domination": True}
    return data, reference, model_output, check, checkpoints


def test_dataset_asset(store):
    out = dataset(context(), store=store)
    assert isinstance(out.value, pa.Table) and out.value.num_rows == 1797
    assert meta(out, "rows_train") + meta(out, "rows_held_out") == 1797
    assert out.data_version.value == from_table(out.value).content_hash()
    assert "| 0 |" in meta(out, "class_histogram")
    assert meta(out, "thumbnail").startswith("![")
    assert meta(out, "config")["training"]["steps"] == 20  # the effective config


def test_reference_batch_is_stratified_and_seeded(store, upstream):
    data, reference, *_ = upstream
    batch = reference_from_table(reference.value)
    assert batch.z.shape == (16, 16) and len(batch.ids) == 16
    counts = np.bincount(batch.labels, minlength=10)
    assert counts.min() >= 1 and counts.max() <= 2  # 16 over 10 classes: every class, at most 2
    train_ids = set(from_table(data.value).subset("train").ids.tolist())
    assert set(batch.ids.tolist()) <= train_ids  # never a held-out image
    again = reference_batch(context(), store=store, dataset=decode_table(data.value))
    assert again.data_version == reference.data_version


def test_evaluator_reports_accuracy_and_its_check(upstream):
    _, _, model_output, check, _ = upstream
    accuracy = meta(model_output, "held_out_accuracy")
    assert 0.1 < accuracy <= 1.0  # one epoch in the tiny config; the real job is held to 95%
    assert meta(model_output, "device") == "cpu"  # the torch_device resource's
    assert check.check_name == "accuracy_at_least_95"
    assert check.passed == (accuracy >= 0.95)


def test_gan_checkpoints_asset_lists_its_checkpoints(upstream, storage_root):
    *_, checkpoints = upstream
    manifest = checkpoints.value
    assert [c.step for c in manifest.checkpoints] == [10, 20]
    assert manifest.run_dir.is_relative_to(storage_root.resolve())
    assert meta(checkpoints, "checkpoints") == 2 and meta(checkpoints, "steps_per_second") > 0
    assert checkpoints.data_version.value == manifest.latest.generator_sha256
    assert meta(checkpoints, "device") == manifest.device == "cpu"


def test_gan_checkpoints_materializes_on_the_torch_device_resource(experiments_dir, tmp_path):
    """Through Dagster: build_definitions(device=...) provides `torch_device`, and training runs on it; on a
    machine without CUDA a launchpad override to cuda reaches training too (and fails there, naming the setting)."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["tiny"])
    job = build_definitions(tmp_path / "store", experiments_dir, device="cpu").resolve_implicit_global_asset_job_def()
    training = [dg.AssetKey("gan_checkpoints")]
    result = job.execute_in_process(instance=instance, partition_key="tiny",
                                    asset_selection=[dg.AssetKey("dataset"), dg.AssetKey("reference_batch"), *training])
    assert result.success
    [materialization] = result.asset_materializations_for_node("gan_checkpoints")
    assert materialization.metadata["device"].value == "cpu"
    assert [c.step for c in result.output_for_node("gan_checkpoints").checkpoints] == [10, 20]
    if torch.cuda.is_available():
        return
    override = job.execute_in_process(instance=instance, partition_key="tiny", asset_selection=training,
                                      run_config={"resources": {"torch_device": {"config": {"name": "cuda"}}}},
                                      raise_on_error=False)
    [failure] = [e for e in override.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "GAN_DEVICE is 'cuda', but this machine has 0 CUDA device(s)" in str(failure.event_specific_data.error)


def test_scores_and_gallery_assets(upstream, store):
    data, reference, model_output, _, checkpoints = upstream
    scores, collapse, regression = checkpoint_scores(context(), store=store, torch_device=CPU_DEVICE,
                                                     mlflow_tracking=MlflowTracking(),
                                                     gan_checkpoints=checkpoints.value,
                                                     evaluator=model_output.value, dataset=decode_table(data.value),
                                                     reference_batch=reference_from_table(reference.value))
    assert collapse.check_name == "mode_collapse" and regression.check_name == "no_regression"
    assert regression.passed  # nothing earlier to regress from
    table: pd.DataFrame = scores.value
    assert table["name"].tolist() == ["step_000010", "step_000020", "real_floor"]
    assert {"fd", "class_coverage", "class_kl", "precision", "recall"} <= set(table.columns)
    best = table.loc[table["fd"][:2].idxmin()]
    assert meta(scores, "best_checkpoint") == best["name"]
    assert meta(scores, "best_fd") == pytest.approx(best["fd"], rel=5e-4)  # rounded to 4 significant digits
    table_meta = scores.metadata["scores"].value  # sortable table metadata, every row
    assert [r.data["name"] for r in table_meta.records] == table["name"].tolist()
    tables = [value.value for k, value in scores.metadata.items() if k.startswith("scores")]
    shown = {c.name for t in tables for c in t.schema.columns}  # every column, in one table or another
    assert shown == set(table.columns) | {"grade", "fd_ratio"}
    assert max(len(t.schema.columns) for t in tables) <= 6 and all(t.schema.columns[0].name == "name" for t in tables)
    assert table_meta.records[0].data["fd"] == pytest.approx(table["fd"][0], rel=5e-3)  # 3 significant digits
    assert table_meta.records[-1].data["grade"] is None and table_meta.records[0].data["grade"] in GRADES
    # in reading order: the verdict, the chart, the tables, the grade alone, then the best and floor entries
    keys = list(scores.metadata)
    assert keys[0] == "verdict"
    assert (keys.index("score_curves") < keys.index("scores") < keys.index("grade") < keys.index("fd_ratio")
            < keys.index("best_checkpoint") < keys.index("best_fd"))
    assert keys.index("scores") < min(keys.index(k) for k in keys if k.startswith(("best_", "real_floor_")))
    assert meta(scores, "fd_ratio") == pytest.approx(best["fd"] / table["fd"].iloc[-1], abs=0.005)
    verdict = meta(scores, "verdict_json")
    assert verdict["grade"] == meta(scores, "grade") and verdict["fd_ratio"] == meta(scores, "fd_ratio")
    assert meta(scores, "verdict").startswith(f"**{verdict['grade']}**") and verdict["checkpoint"] == best["name"]
    assert meta(scores, "score_curves").startswith("![scores over training](data:image/png;base64,")
    assert meta(scores, "real_floor_fd") < meta(scores, "best_fd")  # 20 steps is far from real
    assert meta(scores, "device") == "cpu"

    gallery = sample_gallery(context(), store=store, torch_device=CPU_DEVICE, gan_checkpoints=checkpoints.value,
                             reference_batch=reference_from_table(reference.value), checkpoint_scores=table,
                             evaluator=model_output.value, dataset=decode_table(data.value))
    manifest = gallery.value
    assert sorted(manifest["grids"]) == ["step_000010", "step_000020"]
    assert manifest["best"] == manifest["grids"][best["name"]]
    from PIL import Image

    grid = Image.open(manifest["best"])
    assert grid.size == (2 + 4 * (32 + 2), 2 + 4 * (32 + 2))  # 4×4 images of 32 px, 2 px padding
    assert Image.open(manifest["progress"]).size[1] == 2 + 2 * (32 + 2)  # one row per checkpoint
    assert meta(gallery, "grid").startswith("![samples")
    assert meta(gallery, "gallery_html") == manifest["html"] and Path(manifest["html"]).is_file()
    assert meta(gallery, "device") == "cpu"
    gallery_keys = list(gallery.metadata)
    assert gallery_keys[0] == "verdict"  # checkpoint_scores' verdict, the same, then the pictures, then the grade alone
    assert [meta(gallery, k) for k in ("verdict", "grade", "fd_ratio")] == [meta(scores, k) for k in ("verdict", "grade",
                                                                                                       "fd_ratio")]
    assert all(gallery_keys.index(k) < gallery_keys.index("grade") for k in gallery_keys if k.endswith("_inline"))
