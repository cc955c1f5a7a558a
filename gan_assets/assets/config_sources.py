"""Each section of every experiment YAML as an observable source asset (`config/<section>_yaml`).

Observing a section hashes its *effective* value (defaults applied, key order and formatting
ignored) into the partition's data version and writes that value to a content-addressed snapshot.
Assets depend only on the sections they read, so an edit makes exactly those assets stale, and
`load_config` reads the snapshot Dagster observed, never whatever the file holds by then.
"""

import hashlib
import json
import warnings
from pathlib import Path

import dagster as dg

from gan_assets.assets.experiment_config import CONFIG_SECTIONS, config_key, experiments_partitions, read_snapshot
from gan_assets.core.config import (
    ConfigError,
    ExperimentConfig,
    parse_experiment_file,
    read_experiment_bytes,
    section_hash,
)
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
    """Each registered experiment file on disk, read and validated; a file that fails (any way a file can) is
    left out with a warning, so one broken file never hides the others' changes."""
    configs = {}
    for key in sorted(registered & set(store.experiment_keys())):
        path = str(store.experiment_file(key))
        try:
            configs[key] = parse_unless_unchanged(Path(path))
            _reported.pop(path, None)
        except ConfigError as err:
            if _reported.get(path) != str(err):  # once per new problem, not by each of the 8 section observers
                log.warning(f"not observing {key}: {err}")
                _reported[path] = str(err)
    return configs


# The last parse of each file, by path: the sha256 of the bytes parsed and the config, or the error's message.
# An observation op per section, the sensor's ticks and every run read each file, but validate it again only when
# its bytes changed. `_reported`: the problem last logged for each path.
_last_parse: dict[str, tuple[str, ExperimentConfig | str]] = {}
_reported: dict[str, str] = {}


def parse_unless_unchanged(path: Path) -> ExperimentConfig:
    """The file's config (a copy: callers never share one object), or a fresh ConfigError."""
    data = read_experiment_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    cached = _last_parse.get(str(path))
    if cached is None or cached[0] != digest:
        try:
            cached = (digest, parse_experiment_file(data, str(path)))
        except ConfigError as err:
            cached = (digest, str(err))
        _last_parse[str(path)] = cached
    if isinstance(cached[1], str):
        raise ConfigError(cached[1])
    return cached[1].model_copy(deep=True)


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


# A YAML badge in the lineage view tells config sources from stage assets at a glance (besides the
# `_yaml` key names and the `config` group). `observable_source_asset` takes no `kinds=`; this tag
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
        configs = parse_registered(store, registered, context.log)
        return dg.DataVersionsByPartition(section_versions(store, section, configs))

    return observe


with warnings.catch_warnings():  # observable source assets are beta in Dagster; observing config is the point here
    warnings.simplefilter("ignore", dg.BetaWarning)
    config_sources = [_config_source(section) for section in CONFIG_SECTIONS]
