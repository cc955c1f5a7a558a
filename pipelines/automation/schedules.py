"""Scheduled retraining: weekly for what is stale or missing, and a forced retrain of chosen experiments.

"Stale": the inputs an experiment's `gan_checkpoints` materialization was computed from (the
observed versions of its config sections, the dataset and reference batch versions) are no longer
the latest ones. The forced retrain ignores resumable runs and trains from scratch.
"""

import os

import dagster as dg

from gan_assets.assets.experiment_config import config_key, experiments_partitions, observed_version

TRAINING = dg.AssetKey("gan_checkpoints")


def needs_training(instance: dg.DagsterInstance, partition: str) -> str | None:
    """Why `partition` should retrain ("missing" or "stale: <input>"), or None when it is current."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=TRAINING, asset_partitions=[partition]), limit=1).records
    if not records:
        return "missing"
    # The versions training recorded itself: Dagster's input-version tags are not partition-aware
    # for dynamic partitions of observed sources, so they cannot be compared here.
    entry = records[0].asset_materialization.metadata.get("input_versions")
    for name, used in (entry.value if entry else {}).items():
        if latest_version(instance, name, partition) != used:
            return f"stale: {name}"
    return None


def latest_version(instance: dg.DagsterInstance, name: str, partition: str) -> str | None:
    if name.startswith("config/"):
        return observed_version(instance, config_key(name.removeprefix("config/")), partition)
    record = instance.get_latest_data_version_record(dg.AssetKey(name), is_source=False, partition_key=partition)
    return record.asset_materialization.tags.get("dagster/data_version") if record else None


@dg.schedule(cron_schedule="0 3 * * 1", job_name="experiment", default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Weekly: retrain every experiment whose training is missing or stale.")
def weekly_retrain(context: dg.ScheduleEvaluationContext):
    requests = []
    for partition in context.instance.get_dynamic_partitions(experiments_partitions.name):
        reason = needs_training(context.instance, partition)
        if reason:
            requests.append(dg.RunRequest(partition_key=partition, tags={"retrain_reason": reason}))
    return requests or dg.SkipReason("every experiment's training is current")


def force_retrain_schedule(experiments: list[str], cron_schedule: str = "0 4 * * 0") -> dg.ScheduleDefinition:
    """A schedule that retrains `experiments` from scratch (a fresh run directory) on `cron_schedule`."""

    @dg.schedule(name="force_retrain", cron_schedule=cron_schedule, job_name="experiment",
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=f"Retrain from scratch: {', '.join(experiments) or '(none chosen)'}")
    def force_retrain(context: dg.ScheduleEvaluationContext):
        registered = set(context.instance.get_dynamic_partitions(experiments_partitions.name))
        chosen = [name for name in experiments if name in registered]
        if not chosen:
            return dg.SkipReason(f"none of {experiments} is a registered experiment")
        run_config = {"ops": {"gan_checkpoints": {"config": {"fresh_run": True}}}}
        return [dg.RunRequest(run_key=f"{name}-{context.scheduled_execution_time:%Y%m%d%H%M}", partition_key=name,
                              run_config=run_config, tags={"retrain_reason": "forced"}) for name in chosen]

    return force_retrain


# Which experiments the forced retrain covers: GAN_FORCE_RETRAIN="digits-dcgan,digits-minimax".
forced_experiments = [name for name in os.environ.get("GAN_FORCE_RETRAIN", "").split(",") if name]
