"""Fault tests of the pipeline path: `python -m pipelines.cli.run_experiment` (what `make run` runs), SIGKILLed for
real at ten points across a run (training, inside a checkpoint save, scoring, the gallery, asset writes),
rerun after each kill; the final values equal an uninterrupted run's.

The kills come from `GAN_CRASH_AT` (gan_assets/core/runtime/faults.py): the process SIGKILLs itself there, so no
`finally` and no Dagster cleanup runs, exactly as after the OOM killer. The first kill leaves a STARTED run
holding the `gpu` pool slot: the rerun must recover it (pipelines/automation/recovery.py) instead of waiting forever.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from pipelines.automation.recovery import dead_run_sensor
from tests.conftest import TINY_EXPERIMENT

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# (crash point, occurrence) in the order the chain of reruns meets them; see the module docstring of faults.py.
KILLS = [("train_step", 5), ("train_step", 12), ("atomic_write", 5), ("train_step", 3), ("score_checkpoint", 1),
         ("score_checkpoint", 2), ("gallery_checkpoint", 1), ("gallery_checkpoint", 2), ("atomic_write", 7),
         ("atomic_write", 5)]


def make_world(root: Path) -> dict[str, str]:
    (root / "experiments").mkdir(parents=True)
    (root / "experiments" / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "pipelines" / "dagster.yaml", home / "dagster.yaml")  # the gpu pool, as `make run`
    return {**os.environ, "DAGSTER_HOME": str(home), "GAN_STORAGE_ROOT": str(root / "store"),
            "DAGSTER_DISABLE_TELEMETRY": "1"}


def run_experiment(root: Path, env: dict[str, str], crash: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in env.items() if k != "GAN_CRASH_AT"} | ({"GAN_CRASH_AT": crash} if crash else {})
    return subprocess.run([sys.executable, "-m", "pipelines.cli.run_experiment", str(root / "experiments" / "tiny.yaml")],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240)


def final_values(root: Path) -> dict:
    folder = root / "store" / "experiments" / "tiny"
    manifest = json.loads((folder / "gan_checkpoints.json").read_text())
    return {"weights": [(c["step"], c["generator_sha256"], c["discriminator_sha256"]) for c in manifest["checkpoints"]],
            "scores": pd.read_parquet(folder / "checkpoint_scores.parquet"),
            "gallery": json.loads((folder / "sample_gallery.json").read_text())["sha256"]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("whole")
    done = run_experiment(root, make_world(root))
    assert done.returncode == 0, done.stderr[-3000:]
    return final_values(root)


def test_killed_at_ten_points_and_rerun_ends_as_an_uninterrupted_run(tmp_path, uninterrupted):
    env = make_world(tmp_path)
    for index, (point, occurrence) in enumerate(KILLS):
        killed = run_experiment(tmp_path, env, crash=f"{point}:{occurrence}")
        assert killed.returncode == -signal.SIGKILL, (point, occurrence, killed.stderr[-3000:])
        if index == 4:  # the daemon's way: the sensor recovers the dead run (the CLI recovers the others)
            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                [dead] = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                skip = dead_run_sensor(dg.build_sensor_context(instance=instance))
                assert dead.run_id in skip.skip_message
                assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    finished = run_experiment(tmp_path, env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "recovered run" in finished.stderr  # the last kill's run, recovered by this launch
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    assert summary["experiment"] == "tiny"

    values = final_values(tmp_path)
    assert values["weights"] == uninterrupted["weights"]  # bit-identical G and D at every checkpoint
    pd.testing.assert_frame_equal(values["scores"], uninterrupted["scores"])
    assert values["gallery"] == uninterrupted["gallery"]

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="experiment"))
        statuses = sorted(r.status.value for r in runs)
        assert statuses == ["FAILURE"] * len(KILLS) + ["SUCCESS"]  # every killed run was marked failed
        failure = next(r for r in runs if r.status == dg.DagsterRunStatus.FAILURE)
        assert "is gone without recording an end" in instance.all_logs(failure.run_id)[-1].message
    assert list((tmp_path / "store").rglob("*.tmp")) == []  # temps of killed writes are swept
