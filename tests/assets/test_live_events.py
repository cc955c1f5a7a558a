"""`gan_checkpoints` reports its progress while it trains: observations of the asset, in the instance before the
materialization, with the window's numbers and each checkpoint's grid."""

import dagster as dg
import pytest

import gan_assets.resources.live_events as live_events
from pipelines.definitions import build_definitions
from tests.conftest import TINY_EXPERIMENT, experiment_instance

UPSTREAM = [dg.AssetKey("dataset"), dg.AssetKey("reference_batch")]
TRAINING = dg.AssetKey("gan_checkpoints")


def live_reports(instance: dg.DagsterInstance) -> tuple[list, int]:
    """The observations of gan_checkpoints in the order they were stored, and the materialization's storage id."""
    observations = instance.fetch_observations(TRAINING, limit=1000, ascending=True).records
    [materialization] = instance.fetch_materializations(TRAINING, limit=10).records
    return observations, materialization.storage_id


def test_training_reports_each_window_and_checkpoint_before_it_materializes(tmp_path, monkeypatch):
    monkeypatch.setattr(live_events, "LIVE_SECONDS", 0.0)  # every window (the default: at most one per 10 s)
    instance = experiment_instance(tmp_path / "experiments", "tiny", TINY_EXPERIMENT)
    job = build_definitions(tmp_path / "store", tmp_path / "experiments", device="cpu").resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, partition_key="tiny", asset_selection=[*UPSTREAM, TRAINING])
    assert result.success
    observations, materialized_at = live_reports(instance)
    assert all(o.storage_id < materialized_at for o in observations)  # seen while training, not after
    events = [o.asset_observation for o in observations]
    assert {o.partition for o in events} == {"tiny"}
    progress = [o.metadata for o in events if "loss_d" in o.metadata]
    history = result.output_for_node("gan_checkpoints").history_frame()
    assert [m["step"].value for m in progress] == history["step"].tolist() == [5, 10, 15, 20]
    for row, metadata in zip(history.to_dict("records"), progress):
        for name in ("loss_d", "loss_g", "d_x", "d_g_z"):
            assert metadata[name].value == pytest.approx(row[name], abs=5e-5)  # rounded to 4 places
        assert metadata["steps_per_second"].value > 0 and metadata["eta_seconds"].value >= 0
    assert progress[-1]["percent_done"].value == 100.0 and progress[-1]["eta"].value == "0m00s"
    grids = [o.metadata for o in events if "samples" in o.metadata]
    assert [(m["step"].value, m["checkpoint"].value) for m in grids] == [(10, "step_000010"), (20, "step_000020")]
    assert all(m["samples"].value.startswith("![fixed-z samples at step") for m in grids)


def test_reports_are_throttled_but_the_last_window_always_comes(tmp_path):
    """The default gap (10 s) on a run of a second: the first window, the last one, and every checkpoint."""
    instance = experiment_instance(tmp_path / "experiments", "tiny", TINY_EXPERIMENT)
    job = build_definitions(tmp_path / "store", tmp_path / "experiments", device="cpu").resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(instance=instance, partition_key="tiny", asset_selection=[*UPSTREAM, TRAINING]).success
    observations, _ = live_reports(instance)
    steps = [o.asset_observation.metadata["step"].value for o in observations
             if "loss_d" in o.asset_observation.metadata]
    assert steps == [5, 20]
