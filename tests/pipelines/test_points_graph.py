"""The whole graph on a tiny ring8 experiment: MLPs train, mode metrics score, scatters are drawn."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from gan_assets.assets.experiment_config import experiments_partitions
from pipelines.definitions import build_definitions

TINY_RING8 = {
    "seed": 0,
    "dataset": {"source": "ring8", "num_samples": 800},
    "reference_batch": {"size": 32},
    "model": {"z_dim": 2, "g_width": 16, "d_width": 16},
    "training": {"steps": 20, "batch_size": 32, "checkpoint_every": 10, "log_every": 5},
    "evaluator": {"epochs": 3, "batch_size": 32},
    # no `modes` and a pixel metric listed: the point rule adds the one and drops the other
    "evaluation": {"num_samples": 64, "metrics": ["fd", "class_coverage", "precision_recall", "nn_ratio"]},
    "gallery": {"grid_size": 4},
}


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    root = tmp_path_factory.mktemp("points-graph")
    (root / "experiments").mkdir()
    (root / "experiments" / "ring.yaml").write_text(yaml.safe_dump(TINY_RING8))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["ring"])
    job = build_definitions(root / "store", root / "experiments").resolve_job_def("experiment")
    return root / "store" / "experiments" / "ring", job.execute_in_process(partition_key="ring", instance=instance)


def test_ring8_scores_carry_the_mode_metrics(materialized):
    folder, result = materialized
    assert result.success
    scores = pd.read_parquet(folder / "checkpoint_scores.parquet")
    assert scores["name"].tolist() == ["step_000010", "step_000020", "real_floor"]
    assert {"modes", "hq_fraction", "reverse_kl", "fd", "class_coverage", "recall"} <= set(scores.columns)
    assert "nn_ratio" not in scores.columns
    floor = scores.set_index("name").loc["real_floor"]
    assert floor["modes"] == 8 and floor["hq_fraction"] > 0.95 and floor["reverse_kl"] < 0.05
    assert scores["modes"].between(0, 8).all()


def test_ring8_trains_mlps_and_draws_scatters(materialized):
    folder, _ = materialized
    manifest = json.loads((folder / "gan_checkpoints.json").read_text())
    assert manifest["shape"] == [2] and len(manifest["modes"]["centers"]) == 8
    gallery = json.loads((folder / "sample_gallery.json").read_text())
    assert set(gallery["grids"]) == {"step_000010", "step_000020"}
    for path in [*gallery["grids"].values(), gallery["progress"]]:
        assert Path(path).is_file() and Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ring8_evaluator_check_passes(materialized):
    _, result = materialized
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["accuracy_at_least_95"].passed
    assert checks["finite_weights"].passed
