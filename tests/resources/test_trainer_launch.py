"""gan_checkpoints trained by torchrun ranks through Dagster Pipes (the `trainer_launch` resource), on gloo:
one materialization and one set of checkpoints from two ranks; switching the launch keeps the run (same run
directory, same data version); a silent trainer, a failing rank and a cancelled run each fail as stated."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from pipelines.definitions import build_definitions
from tests.conftest import TINY_EXPERIMENT, experiment_instance

PROJECT_ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = [dg.AssetKey("dataset"), dg.AssetKey("reference_batch")]
TRAINING = [dg.AssetKey("gan_checkpoints")]
pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipes")
    instance = experiment_instance(root / "experiments", "tiny", TINY_EXPERIMENT)
    job = build_definitions(root / "store", root / "experiments", device="cpu").resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(instance=instance, partition_key="tiny", asset_selection=UPSTREAM).success
    return job, instance


def materialize(world, launch: dict | None) -> dg.ExecuteInProcessResult:
    job, instance = world
    run_config = {"resources": {"trainer_launch": {"config": launch}}} if launch else {}
    return job.execute_in_process(instance=instance, partition_key="tiny", asset_selection=TRAINING,
                                  run_config=run_config, raise_on_error=False)


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return str(failure.event_specific_data.error)


@pytest.fixture(scope="module")
def two_ranks(world):
    result = materialize(world, {"mode": "torchrun", "nproc_per_node": 2})
    assert result.success, failure_message(result)
    return result


def test_two_ranks_report_one_materialization_and_write_one_set_of_checkpoints(two_ranks):
    [materialization] = two_ranks.asset_materializations_for_node("gan_checkpoints")
    manifest = two_ranks.output_for_node("gan_checkpoints")
    assert materialization.metadata["world_size"].value == 2
    assert materialization.tags["dagster/data_version"] == manifest.latest.generator_sha256
    assert [c.step for c in manifest.checkpoints] == [10, 20]
    assert sorted(p.name for p in manifest.run_dir.glob("*.safetensors")) == [
        f"step_0000{s}.{player}.safetensors" for s in (10, 20) for player in ("discriminator", "generator")]
    statuses = [json.loads((manifest.run_dir / "launch" / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert [s["status"] for s in statuses] == ["finished", "finished"]
    assert statuses[0]["weights_sha256"] == statuses[1]["weights_sha256"]  # identical parameters on both ranks
    history = manifest.history_frame()
    assert history["step"].tolist() == [5, 10, 15, 20]
    assert np.isfinite(history[["loss_d", "loss_g", "d_x", "d_g_z"]].to_numpy()).all()
    assert materialization.metadata["final_loss_d"].value == pytest.approx(float(history["loss_d"].iloc[-1]))
    checks = {c.check_name: c for c in two_ranks.get_asset_check_evaluations()}
    assert set(checks) == {"finite_weights", "d_domination"} and checks["finite_weights"].passed
    assert checks["finite_weights"].metadata["non_finite_tensors"].value == 0


def test_rank_0_reports_progress_and_grids_on_the_asset_page_before_it_materializes(world, two_ranks):
    """Rank 0 writes its live file (launch/live.jsonl); the launching step reports it as observations, in order."""
    _, instance = world
    run_id = two_ranks.run_id
    observations = [r for r in instance.fetch_observations(TRAINING[0], limit=1000, ascending=True).records
                    if r.run_id == run_id]
    [materialization] = [r for r in instance.fetch_materializations(TRAINING[0], limit=100).records if r.run_id == run_id]
    assert observations and all(r.storage_id < materialization.storage_id for r in observations)
    metadata = [r.asset_observation.metadata for r in observations]
    history = two_ranks.output_for_node("gan_checkpoints").history_frame().set_index("step")
    progress = [m for m in metadata if "loss_d" in m]
    assert [m["step"].value for m in progress] == [5, 20]  # the first window, then at most one per 10 s, the last
    for m in progress:  # the global batch's means, as the history holds them
        assert m["loss_d"].value == pytest.approx(history.loc[m["step"].value, "loss_d"], abs=5e-5)
    grids = [m for m in metadata if "samples" in m]
    assert [m["step"].value for m in grids] == [10, 20]
    assert all(m["samples"].value.startswith("![fixed-z samples") for m in grids)


def test_switching_back_to_in_process_keeps_the_run_and_its_data_version(world, two_ranks):
    [by_ranks] = two_ranks.asset_materializations_for_node("gan_checkpoints")
    in_process = materialize(world, None)
    assert in_process.success
    [again] = in_process.asset_materializations_for_node("gan_checkpoints")
    assert again.metadata["run_dir"].value == by_ranks.metadata["run_dir"].value  # same run key
    # it resumed the finished run: nothing retrained
    assert again.tags["dagster/data_version"] == by_ranks.tags["dagster/data_version"]


def test_a_trainer_that_exits_0_without_reporting_fails_the_asset(world, monkeypatch):
    monkeypatch.setenv("FAULTY_TRAINER", "silent")
    result = materialize(world, {"mode": "torchrun", "module": "tests.resources.faulty_trainer"})
    assert not result.success
    assert "exited 0 but reported 0 materialization(s) and is missing checks" in failure_message(result)


def test_a_failing_rank_fails_the_asset_with_its_message(world, monkeypatch):
    monkeypatch.setenv("FAULTY_TRAINER", "rank1")
    result = materialize(world, {"mode": "torchrun", "nproc_per_node": 2, "module": "tests.resources.faulty_trainer"})
    assert not result.success
    assert "rank 1: RuntimeError: rank 1 lost its device (test fault)" in failure_message(result)


CANCELLED_RUN = """
import sys, dagster as dg
from pipelines.definitions import build_definitions
from gan_assets.assets.experiment_config import experiments_partitions
root = sys.argv[1]
instance = dg.DagsterInstance.ephemeral()
instance.add_dynamic_partitions(experiments_partitions.name, ["tiny"])
job = build_definitions(root + "/store", root + "/experiments", device="cpu").resolve_implicit_global_asset_job_def()
result = job.execute_in_process(instance=instance, partition_key="tiny", raise_on_error=False,
    asset_selection=[dg.AssetKey(k) for k in ("dataset", "reference_batch", "gan_checkpoints")],
    run_config={"resources": {"trainer_launch": {"config": {"mode": "torchrun", "nproc_per_node": 2}}}})
print("RUN", result.dagster_run.status.value, flush=True)
"""


def descendants(pid: int) -> set[int]:
    """Live processes below `pid` (from /proc: each process's parent)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = {child for child, p in parents.items() if p == parent}
        found |= children
        todo += children
    return found


def test_cancelling_the_run_stops_every_rank(tmp_path):
    """SIGINT to the Dagster process (what cancelling a run sends): Pipes forwards it to torchrun, which stops
    both ranks; nothing is left running and the run is not a success."""
    long_run = {**TINY_EXPERIMENT, "training": {**TINY_EXPERIMENT["training"], "steps": 100_000,
                                                "checkpoint_every": 100}}  # at most 1,000 checkpoints
    experiment_instance(tmp_path / "experiments", "tiny", long_run)
    process = subprocess.Popen([sys.executable, "-c", CANCELLED_RUN, str(tmp_path)], cwd=PROJECT_ROOT,
                               env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    history, deadline = None, time.monotonic() + 300
    while time.monotonic() < deadline:  # until both ranks have trained and rank 0 wrote a checkpoint
        history = next(tmp_path.glob("store/experiments/tiny/runs/*/history.parquet"), None)
        if history is not None:
            break
        time.sleep(0.5)
    assert history is not None, "the ranks never reached their first checkpoint"
    ranks = descendants(process.pid)
    assert len(ranks) >= 3  # torchrun and its two ranks
    os.kill(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert "sending SIGINT to subprocess" in output and "RUN FAILURE" in output, output[-3000:]
    still_running = ranks & descendants(1)
    assert not still_running, output[-3000:]
    assert len(pd.read_parquet(history)) >= 1
