"""Each model family end to end from YAML through every asset (tiny networks, a few steps, 8×8 digits), then the
leaderboard with all of them side by side."""

import copy
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from gan_assets.assets.experiment_config import experiments_partitions
from gan_assets.core.evaluation.loading import load_generator
from gan_assets.core.storage import StoredFileError
from gan_assets.core.training.manifest import RunManifest
from pipelines.cli import compare_families, run_experiment
from pipelines.definitions import build_definitions
from tests.conftest import TINY_EXPERIMENT

FAMILIES = {"vae": {"latent_dim": 4, "width": 4}, "fvbn": {"width": 4, "layers": 1},
            "real_nvp": {"width": 4, "couplings": 1}}


def family_experiment(family: str) -> dict:
    raw = copy.deepcopy(TINY_EXPERIMENT)
    raw["dataset"] = {"image_size": 8}
    raw["model"] = {"family": family, family: FAMILIES[family]}
    return raw


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    (root / "experiments").mkdir()
    (root / "experiments" / "tiny-gan.yaml").write_text(yaml.safe_dump({**TINY_EXPERIMENT, "dataset": {"image_size": 8}}))
    for family in FAMILIES:
        (root / "experiments" / f"tiny-{family}.yaml").write_text(yaml.safe_dump(family_experiment(family)))
    definitions = build_definitions(root / "store", root / "experiments")
    instance = dg.DagsterInstance.ephemeral()
    keys = ["tiny-gan", *(f"tiny-{family}" for family in FAMILIES)]
    instance.add_dynamic_partitions(experiments_partitions.name, keys)
    job = definitions.resolve_job_def("experiment")
    results = {key: job.execute_in_process(partition_key=key, instance=instance) for key in keys}
    board = definitions.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey("leaderboard")])
    return root, results, board, instance


def metadata(result, asset):
    [event] = result.asset_materializations_for_node(asset)
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_asset_materializes_for_the_family(materialized, family):
    root, results, _, _ = materialized
    result = results[f"tiny-{family}"]
    assert result.success
    folder = root / "store" / "experiments" / f"tiny-{family}"
    manifest = json.loads((folder / "gan_checkpoints.json").read_text())
    assert manifest["model"]["family"] == family and [e["step"] for e in manifest["checkpoints"]] == [10, 20]
    assert all(e["discriminator"] is None and e["state_sha256"] for e in manifest["checkpoints"])
    scores = pd.read_parquet(folder / "checkpoint_scores.parquet")
    assert scores["name"].tolist() == ["step_000010", "step_000020", "real_floor"]
    bits = scores["bits_per_dim"].tolist()
    assert 0 < bits[0] < 12 and 0 < bits[1] < 12 and pd.isna(bits[2])  # near 8 (a uniform model) after 20 steps
    facts = metadata(result, "checkpoint_scores")
    assert facts["family"] == family and facts["bits_per_dim_is_bound"] is (family == "vae")
    assert facts["samples_timed"] == 10_000 and facts["samples_per_second"] > 0 and facts["sharpness"] > 0
    assert metadata(result, "gan_checkpoints")["train_seconds"] > 0
    page = Path(result.output_for_node("sample_gallery")["html"]).read_text()
    assert "One row per class" in page and "Nearest training neighbours" in page
    assert ("Latent interpolations" in page) is (family != "fvbn")  # the FVBN's z are per-pixel draws
    assert "Batch dependence" not in page  # no batch norm outside the GAN


def test_the_gan_has_no_likelihood_column(materialized):
    root, results, _, _ = materialized
    scores = pd.read_parquet(root / "store" / "experiments" / "tiny-gan" / "checkpoint_scores.parquet")
    assert "bits_per_dim" not in scores
    assert metadata(results["tiny-gan"], "checkpoint_scores")["family"] == "gan"


def test_family_checkpoints_are_checked_by_sha256(materialized, tmp_path):
    root, results, _, _ = materialized
    manifest: RunManifest = results["tiny-vae"].output_for_node("gan_checkpoints")
    first, last = manifest.checkpoints
    moved = manifest.moved_to(tmp_path)
    for entry in manifest.checkpoints:
        for name in (entry.generator, entry.state):
            (tmp_path / name).write_bytes((manifest.run_dir / name).read_bytes())
    (tmp_path / last.generator).write_bytes((tmp_path / first.generator).read_bytes())  # another valid file
    with pytest.raises(StoredFileError, match="replaced or corrupted"):
        load_generator(moved, last)
    load_generator(moved, first)


def test_the_leaderboard_puts_the_families_side_by_side(materialized):
    _, _, board, _ = materialized
    table = board.output_for_node("leaderboard").set_index("experiment")
    assert table.loc[["tiny-gan", "tiny-vae", "tiny-fvbn", "tiny-real_nvp"], "family"].tolist() == \
        ["gan", "vae", "fvbn", "real_nvp"]
    assert pd.isna(table.loc["tiny-gan", "bits_per_dim"]) and table.loc["tiny-fvbn", "bits_per_dim"] > 0
    assert (table["samples_per_second"] > 0).all() and (table["train_seconds"] > 0).all()
    claims = metadata(board, "leaderboard")["family_claims"]
    assert "FVBN samples one pixel at a time" in claims and "Real NVP" in claims and "VAE" in claims


def test_make_runs_summary_line_names_the_families_likelihood(materialized):
    *_, instance = materialized
    line = run_experiment.summary(instance, "tiny-fvbn", list(run_experiment.STAGES), wall_seconds=1.0)
    assert line["scores"]["bits_per_dim"] > 0 and line["real_floor"]["bits_per_dim"] is None


def test_compare_families_line_has_exactly_the_issues_keys():
    row = pd.Series({"family": "gan", "fd": 14.351, "precision": 0.435, "recall": 0.863, "class_coverage": 10.0,
                     "samples_per_second": 52_345.6, "bits_per_dim": float("nan"), "bits_per_dim_is_bound": None,
                     "train_seconds": 420.12, "kid": 3.0})
    assert compare_families.family_line(row) == {
        "family": "gan", "fd": 14.35, "precision": 0.435, "recall": 0.863, "class_coverage": 10.0,
        "samples_per_second": 52350.0, "bits_per_dim": None, "bits_per_dim_is_bound": False, "train_seconds": 420.1}
