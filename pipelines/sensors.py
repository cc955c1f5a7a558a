"""Experiment files become partitions: a new YAML adds one, a deleted YAML removes it.

Removing a partition forgets the key, not the files: what it materialized stays under the storage
root, and re-adding the file brings its history back.
"""


import dagster as dg

from gan_assets.experiment import ExperimentStore, experiments_partitions


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def experiment_files_sensor(context: dg.SensorEvaluationContext, store: ExperimentStore) -> dg.SensorResult:
    on_disk = set(store.experiment_keys())
    registered = set(context.instance.get_dynamic_partitions(experiments_partitions.name))
    added, removed = sorted(on_disk - registered), sorted(registered - on_disk)
    requests = []
    if added:
        requests.append(experiments_partitions.build_add_request(added))
    if removed:
        requests.append(experiments_partitions.build_delete_request(removed))
    if not requests:
        return dg.SensorResult(skip_reason="experiment files unchanged")
    context.log.info(f"added {added}, removed {removed}")
    return dg.SensorResult(dynamic_partitions_requests=requests)
