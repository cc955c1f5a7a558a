"""Each section of every experiment YAML as an observable source asset (`config/<section>`).

Observing a section hashes its *effective* value (defaults applied, key order and formatting
ignored) into the partition's data version and writes that value to a content-addressed snapshot.
Assets depend only on the sections they read, so an edit makes exactly those assets stale, and
`load_config` reads the snapshot Dagster observed, never whatever the file holds by then.
"""

import json
import warnings

import dagster as dg

from gan_assets.core.config import ConfigError, ExperimentConfig, load_experiment, section_hash
from gan_assets.core.storage import StoredFileError, write_bytes_atomic
from gan_assets.experiment import CONFIG_SECTIONS, ExperimentStore, config_key, experiments_partitions, read_snapshot


def section_value(config: ExperimentConfig, section: str):
    value = getattr(config, section)
    return value if section == "seed" else value.model_dump(mode="json")


def snapshot_is_intact(path, version: str) -> bool:
    try:
        read_snapshot(path, version)
    except StoredFileError:
        return False
    return True


def observe_section(store: ExperimentStore, section: str, registered: set[str], log) -> dict[str, str]:
    """Data version of `section` for every registered, valid experiment file, each backed by a snapshot."""
    versions = {}
    for key in sorted(registered & set(store.experiment_keys())):
        try:
            config = load_experiment(store.experiment_file(key))
        except ConfigError as err:  # one broken file must not hide the others' changes
            log.error(f"not observing {key}: {err}")
            continue
        value = section_value(config, section)
        version = section_hash(value)
        path = store.snapshot_path(section, version)
        if not snapshot_is_intact(path, version):  # missing, or corrupted since: (re)write it
            write_bytes_atomic(json.dumps(value, sort_keys=True).encode(), path)
        versions[key] = version
    return versions


# A YAML badge in the lineage view tells config sources from stage assets at a glance (besides the
# `config/` key prefix and the `config` group). `observable_source_asset` takes no `kinds=`; this tag
# is what `kinds=` becomes on other assets.
CONFIG_SOURCE_KIND = {"dagster/kind/yaml": ""}


def _config_source(section: str) -> dg.SourceAsset:
    @dg.observable_source_asset(
        key=config_key(section), partitions_def=experiments_partitions, group_name="config",
        tags=CONFIG_SOURCE_KIND, required_resource_keys={"store"},
        description=f"The `{section}` section of each experiment YAML; data version = hash of its effective value.",
    )
    def observe(context) -> dg.DataVersionsByPartition:
        registered = set(context.instance.get_dynamic_partitions(experiments_partitions.name))
        return dg.DataVersionsByPartition(observe_section(context.resources.store, section, registered, context.log))

    return observe


with warnings.catch_warnings():  # observable source assets are beta in Dagster; observing config is the point here
    warnings.simplefilter("ignore", dg.BetaWarning)
    config_sources = [_config_source(section) for section in CONFIG_SECTIONS]
