"""Scheduled retraining: weekly for what went stale, and a forced retrain of chosen experiments.

"Stale": the inputs an experiment's `gan_checkpoints` materialization was computed from (the
observed versions of its config sections, the dataset and reference batch versions) are no longer
the latest ones. The forced retrain ignores resumable runs and trains from scratch.

A registered experiment that was never trained is the same "new experiment" as in policy.py: it waits
for a click unless `train_new_experiments` (`GAN_TRAIN_NEW_EXPERIMENTS=1`) is on, so leaving `make ui`
running over a Monday does not train every file in experiments/.
"""

import os

import dagster as dg

from gan_assets.assets.experiment_config import (
    CONFIG_SOURCE_SUFFIX,
    config_key,
    experiments_partitions,
    observed_version,
)
from gan_assets.core.storage import EXPERIMENT_KEY

TRAINING = dg.AssetKey("gan_checkpoints")
MISSING = "missing"


def needs_training(instance: dg.DagsterInstance, partition: str) -> str | None:
    """Why `partition` should retrain ("missing" or "stale: <input>"), or None when it is current."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=TRAINING, asset_partitions=[partition]), limit=1).records
    if not records:
        return MISSING
    # The versions training recorded itself: Dagster's input-version tags are not partition-aware
    # for dynamic partitions of observed sources, so they cannot be compared here.
    entry = records[0].asset_materialization.metadata.get("input_versions")
    for name, used in (entry.value if entry else {}).items():
        if latest_version(instance, name, partition) != used:
            return f"stale: {name}"
    return None


def latest_version(instance: dg.DagsterInstance, name: str, partition: str) -> str | None:
    if name.startswith("config/"):  # `config/<section>_yaml`; trainings recorded before the suffix: `config/<section>`
        return observed_version(instance, config_key(name.removeprefix("config/").removesuffix(CONFIG_SOURCE_SUFFIX)),
                                partition)
    record = instance.get_latest_data_version_record(dg.AssetKey(name), is_source=False, partition_key=partition)
    return record.asset_materialization.tags.get("dagster/data_version") if record else None


def weekly_retrain_schedule(train_new_experiments: bool) -> dg.ScheduleDefinition:
    """`weekly_retrain`: retrains stale experiments; never-trained ones only when `train_new_experiments`."""
    new = ("also trains never-trained experiments (GAN_TRAIN_NEW_EXPERIMENTS is on)" if train_new_experiments else
           "never-trained experiments wait for a click (set GAN_TRAIN_NEW_EXPERIMENTS=1 to train them here too)")

    @dg.schedule(name="weekly_retrain", cron_schedule="0 3 * * 1", job_name="experiment",
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=f"Mondays 03:00 UTC: retrains every experiment whose gan_checkpoints was materialized "
                             f"before and is now stale (a config section it read, the dataset or the reference "
                             f"batch changed since); {new}.")
    def weekly_retrain(context: dg.ScheduleEvaluationContext):
        requests, waiting = [], []
        for partition in context.instance.get_dynamic_partitions(experiments_partitions.name):
            if not EXPERIMENT_KEY.fullmatch(partition):
                continue  # a hostile key added through the API: experiment_files_sensor removes it
            reason = needs_training(context.instance, partition)
            if reason == MISSING and not train_new_experiments:
                waiting.append(partition)
            elif reason:
                requests.append(dg.RunRequest(partition_key=partition, tags={"retrain_reason": reason}))
        if requests:
            return requests
        return dg.SkipReason("every trained experiment is current"
                             + (f"; never trained, waiting for a click: {waiting}" if waiting else ""))

    return weekly_retrain


def force_retrain_schedule(experiments: list[str], cron_schedule: str = "0 4 * * 0") -> dg.ScheduleDefinition:
    """A schedule that retrains `experiments` from scratch (a fresh run directory) on `cron_schedule`.

    Off by default when nothing is chosen, so the UI does not show a running schedule that can only skip.
    A chosen name that is not a valid experiment key is reported (description, skip reason), never requested.
    """
    valid = [name for name in experiments if EXPERIMENT_KEY.fullmatch(name)]
    invalid = [name for name in experiments if name not in valid]
    chosen_text = ", ".join(valid) or "(none chosen: set GAN_FORCE_RETRAIN)"
    invalid_text = f"; not valid experiment keys, ignored: {invalid}" if invalid else ""

    @dg.schedule(name="force_retrain", cron_schedule=cron_schedule, job_name="experiment",
                 default_status=dg.DefaultScheduleStatus.RUNNING if valid else dg.DefaultScheduleStatus.STOPPED,
                 description=f"Retrain from scratch: {chosen_text}{invalid_text}")
    def force_retrain(context: dg.ScheduleEvaluationContext):
        registered = set(context.instance.get_dynamic_partitions(experiments_partitions.name))
        chosen = [name for name in valid if name in registered]
        problems = [f"{name!r} is not a valid experiment key" for name in invalid]
        problems += [f"{name!r} is not a registered experiment" for name in valid if name not in registered]
        if not chosen:
            return dg.SkipReason("; ".join(problems) if problems else "no experiment chosen: set GAN_FORCE_RETRAIN")
        for problem in problems:
            context.log.warning(f"GAN_FORCE_RETRAIN: {problem}, skipped")
        run_config = {"ops": {"gan_checkpoints": {"config": {"fresh_run": True}}}}
        return [dg.RunRequest(run_key=f"{name}-{context.scheduled_execution_time:%Y%m%d%H%M}", partition_key=name,
                              run_config=run_config, tags={"retrain_reason": "forced"}) for name in chosen]

    return force_retrain


def forced_experiments_from_env() -> list[str]:
    """Which experiments the forced retrain covers: GAN_FORCE_RETRAIN="digits-dcgan, digits-minimax"."""
    return [name.strip() for name in os.environ.get("GAN_FORCE_RETRAIN", "").split(",") if name.strip()]
