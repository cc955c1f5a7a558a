"""Sensors over the experiment files.

- New YAML files become partitions, deleted ones are removed (their materialized files stay under
  the storage root, and re-adding the file brings its history back).
- A changed file triggers an observation of the config sections.
"""


import hashlib

import dagster as dg

from gan_assets.experiment import ExperimentStore, experiments_partitions


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def experiment_files_sensor(context: dg.SensorEvaluationContext, store: ExperimentStore) -> dg.SensorResult:
    on_disk = set(store.experiment_keys())
    for name in store.invalid_experiment_files():  # never registered: the key would name a folder outside
        context.log.warning(f"not registering {name}: its name is not a valid experiment key "
                            "(letters, digits, '-', '_', '.'; starting with a letter or digit)")
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


def files_fingerprint(store: ExperimentStore) -> str:
    """sha256 over every experiment file's name and bytes: any save, even a no-op edit, changes it."""
    digest = hashlib.sha256()
    for key in store.experiment_keys():
        digest.update(key.encode() + b"\0" + store.experiment_file(key).read_bytes() + b"\0")
    return digest.hexdigest()


@dg.sensor(job_name="observe_config", minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def config_change_sensor(context: dg.SensorEvaluationContext, store: ExperimentStore):
    """Observe the config sections when an experiment file's bytes change (one run covers every file).

    Observation then decides what changed: a reformatted file keeps its sections' versions, so
    nothing downstream reruns; a real edit changes one section's version, and automation takes over.
    """
    fingerprint = files_fingerprint(store)
    if fingerprint == context.cursor:
        return dg.SkipReason("experiment files unchanged since the last observation")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key=fingerprint)
