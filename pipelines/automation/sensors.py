"""Sensors over the experiment files.

- New YAML files become partitions, deleted ones are removed (their materialized files stay under
  the storage root, and re-adding the file brings its history back).
- A changed file is observed: the sensor records its config sections' data versions itself.
"""


import hashlib
from pathlib import Path

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from gan_assets.assets.config_sources import parse_registered, section_versions
from gan_assets.assets.experiment_config import CONFIG_SECTIONS, config_key, experiments_partitions
from gan_assets.core.config import ConfigError, read_experiment_bytes
from gan_assets.resources.store import ExperimentStore


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


def registered_keys(context: dg.SensorEvaluationContext, store: ExperimentStore) -> list[str]:
    """The experiments to observe: registered partitions whose file is still on disk."""
    registered = set(context.instance.get_dynamic_partitions(experiments_partitions.name))
    return sorted(registered & set(store.experiment_keys()))


def files_fingerprint(store: ExperimentStore, keys: list[str]) -> str:
    """sha256 over the names and bytes of `keys`' files: any save, even a no-op edit, changes it.

    Only registered files count, so a file registered after the last tick (experiment_files_sensor
    may tick later than this one) changes the fingerprint and is observed then, not at its next edit.
    """
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode() + b"\0" + file_signature(store.experiment_file(key)) + b"\0")
    return digest.hexdigest()


def file_signature(path: Path) -> bytes:
    """The file's bytes; for one that cannot be an experiment (too large, a FIFO, unreadable: never read whole,
    never opened) the reason it is refused, with its size and mtime, so fixing it is still seen."""
    try:
        return read_experiment_bytes(path)
    except ConfigError as err:
        try:
            info = path.stat()
        except OSError:
            return str(err).encode()
        return f"{err}\0{info.st_size}\0{info.st_mtime_ns}".encode()


def section_observations(store: ExperimentStore, keys: list[str], log) -> list[dg.AssetObservation]:
    """What the `config/<section>_yaml` sources' observe function logs, for every section of every key."""
    configs = parse_registered(store, set(keys), log)  # each file read and validated once per observation
    return [dg.AssetObservation(asset_key=config_key(section), partition=key, tags={DATA_VERSION_TAG: version})
            for section in CONFIG_SECTIONS
            for key, version in section_versions(store, section, configs).items()]


@dg.sensor(minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def config_change_sensor(context: dg.SensorEvaluationContext, store: ExperimentStore) -> dg.SensorResult:
    """Observe the config sections when a registered experiment file's bytes change.

    The observations are runless asset events, recorded by the sensor daemon itself: no
    `observe_config` run to queue and start before automation can react (the job stays, for
    `make run`). Observation then decides what changed: a reformatted file keeps its sections'
    versions, so nothing downstream reruns; a real edit changes one section's version, and
    automation takes over.
    """
    keys = registered_keys(context, store)
    fingerprint = files_fingerprint(store, keys)
    if fingerprint == context.cursor:
        return dg.SensorResult(skip_reason="experiment files unchanged since the last observation")
    observations = section_observations(store, keys, context.log)
    context.log.info(f"observed {len(observations)} config sections of {keys}")
    return dg.SensorResult(asset_events=observations, cursor=fingerprint)
