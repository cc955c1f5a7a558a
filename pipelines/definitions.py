"""The one `Definitions` of the code location: assets, job, sensor, resources.

`build_definitions` takes what differs between environments (where experiment files live, where outputs
go, the torch device), so tests build the same graph over temporary directories.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

from gan_assets.assets.checkpoint_scores import checkpoint_scores
from gan_assets.assets.config_sources import config_sources
from gan_assets.assets.dataset import dataset
from gan_assets.assets.evaluator import evaluator
from gan_assets.assets.exported_generator import exported_generator
from gan_assets.assets.gan_checkpoints import gan_checkpoints
from gan_assets.assets.leaderboard import leaderboard
from gan_assets.assets.reference_batch import reference_batch
from gan_assets.assets.sample_gallery import sample_gallery
from gan_assets.assets.tutorial import cost_response_curves, divergence_fits
from gan_assets.resources.io_manager import io_manager_at
from gan_assets.resources.store import store_at
from gan_assets.resources.torch_device import TorchDevice
from gan_assets.resources.tracking import MlflowTracking
from gan_assets.resources.trainer_launch import TrainerLaunch, launch_from_env
from pipelines.automation.policy import automated, automation_sensor, train_new_experiments_by_default
from pipelines.automation.recovery import dead_run_sensor, no_retry_on_user_error
from pipelines.automation.schedules import force_retrain_schedule, forced_experiments_from_env, weekly_retrain_schedule
from pipelines.automation.sensors import config_change_sensor, experiment_files_sensor

# Content-hash data versions on outputs are the point of this project; Dagster marks them beta.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GAN_ASSETS = [dataset, reference_batch, evaluator, gan_checkpoints, checkpoint_scores, exported_generator,
              sample_gallery]

# The whole graph for one experiment: what `make run` and "Materialize all" execute.
experiment_job = dg.define_asset_job("experiment", selection=dg.AssetSelection.assets(*GAN_ASSETS))
# Reads every experiment file's sections, in process; `make run` observes through it. In `dagster dev`,
# config_change_sensor records the same observations without a run.
# In process: eight sub-second observations, not eight subprocesses (minutes of start-up in `make ui`).
observe_config_job = dg.define_asset_job("observe_config", selection=dg.AssetSelection.assets(*[s.key for s in config_sources]),
                                         executor_def=dg.in_process_executor)


def build_definitions(storage_root: str | Path, experiments_dir: str | Path,
                      train_new_experiments: bool | None = None, *, device: str | None = None,
                      trainer: TrainerLaunch | None = None) -> dg.Definitions:
    """`train_new_experiments` (default: `GAN_TRAIN_NEW_EXPERIMENTS`, off): whether automation trains a new
    experiment file by itself, or waits for a click (see pipelines/automation/policy.py). `device` (default:
    `GAN_DEVICE`, auto): the `torch_device` resource training runs on, a setting of this deployment. `trainer`
    (default: `GAN_TRAIN_NPROC`, in process): how training is launched (gan_assets/resources/trainer_launch.py).

    The storage root and the experiments folder are bound with no config fields (`store_at`, `io_manager_at`):
    a run's config cannot move where a run reads or writes. Every asset carries the `no_retry_on_user_error`
    hook: a run that failed on a bad key, file or dataset is not retried (pipelines/automation/recovery.py)."""
    torch_device = TorchDevice.from_env(name=device)
    if train_new_experiments is None:
        train_new_experiments = train_new_experiments_by_default()
    assets = [*automated([*GAN_ASSETS, leaderboard], train_new_experiments), cost_response_curves, divergence_fits]
    return dg.Definitions(
        assets=[*config_sources, *(asset.with_hooks({no_retry_on_user_error}) for asset in assets)],
        jobs=[experiment_job, observe_config_job],
        sensors=[experiment_files_sensor, config_change_sensor, automation_sensor, dead_run_sensor],
        schedules=[weekly_retrain_schedule(train_new_experiments), force_retrain_schedule(forced_experiments_from_env())],
        resources={"store": store_at(experiments_dir, storage_root), "torch_device": torch_device,
                   "trainer_launch": trainer or launch_from_env(), "io_manager": io_manager_at(storage_root),
                   "mlflow_tracking": MlflowTracking()},
    )


STORAGE_ROOT = Path(os.environ.get("GAN_STORAGE_ROOT", PROJECT_ROOT / "data"))
EXPERIMENTS_DIR = Path(os.environ.get("GAN_EXPERIMENTS_DIR", PROJECT_ROOT / "experiments"))
defs = build_definitions(STORAGE_ROOT, EXPERIMENTS_DIR)
