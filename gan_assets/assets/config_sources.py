"""Each section of every experiment YAML as an observable source asset (`config/<section>`).

Observing a section hashes its *effective* value (defaults applied, key order and formatting
ignored) into the partition's data version and writes that value to a content-addressed snapshot.
Assets depend only on the sections they read, so an edit makes exactly those assets stale, and
`load_config` reads the snapshot Dagster observed, never whatever the file holds by then.
"""

import json
import warnings

import dagster as dg

from gan_assets.assets.experiment_config import CONFIG_SECTIONS, config_key, experiments_partitions, read_snapshot
from gan_assets.core.config import ConfigError, ExperimentConfig, load_experiment, section_hash
from gan_assets.core.storage import StoredFileError, write_bytes_atomic
from gan_assets.resources.store import ExperimentStore


def section_value(config: ExperimentConfig, section: str):
    value = getattr(config, section)
    return value if section == "seed" else value.model_dump(mode="json")


def snapshot_is_intact(path, version: str) -> bool:
    try:
        read_snapshot(path, version)
    except StoredFileError:
        return False
    return True


def parse_registered(store: ExperimentStore, registered: set[str], log) -> dict[str, ExperimentConfig]:
    """Each registered experiment file on disk, read and validated once; a file that fails is logged and left
    out, so one broken file never hides the others' changes."""
    configs = {}
    for key in sorted(registered & set(store.experiment_keys())):
        try:
            configs[key] = load_experiment(store.experiment_file(key))
        except ConfigError as err:
            log.error(f"not observing {key}: {err}")
    return configs


def section_versions(store: ExperimentStore, section: str, configs: dict[str, ExperimentConfig]) -> dict[str, str]:
    """Data version of `section` for every parsed experiment, each backed by its content-addressed snapshot."""
    versions = {}
    for key, config in configs.items():
        value = section_value(config, section)
        version = section_hash(value)
        path = store.snapshot_path(section, version)
        if not snapshot_is_intact(path, version):  # missing, or corrupted since: (re)write it
            write_bytes_atomic(json.dumps(value, sort_keys=True).encode(), path)
        versions[key] = version
    return versions


# The files parsed by the observation run in progress: the run observes every section (one op per source, in one
# process: observe_config_job's in-process executor), and each op reads the same parse instead of its own.
_parsed_in_run: dict[str, dict[str, ExperimentConfig]] = {}


def parsed_for_run(run_id: str, store: ExperimentStore, registered: set[str], log) -> dict[str, ExperimentConfig]:
    if run_id == "EPHEMERAL":  # a direct invocation (Dagster's id for it is shared by all): no run to cache for
        return parse_registered(store, registered, log)
    if run_id not in _parsed_in_run:
        _parsed_in_run.clear()  # only the current observation's parse is kept
        _parsed_in_run[run_id] = parse_registered(store, registered, log)
    return _parsed_in_run[run_id]


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
        store = context.resources.store
        registered = set(context.instance.get_dynamic_partitions(experiments_partitions.name))
        configs = parsed_for_run(context.run_id, store, registered, context.log)
        return dg.DataVersionsByPartition(section_versions(store, section, configs))

    return observe


with warnings.catch_warnings():  # observable source assets are beta in Dagster; observing config is the point here
    warnings.simplefilter("ignore", dg.BetaWarning)
    config_sources = [_config_source(section) for section in CONFIG_SECTIONS]
