"""How an experiment reaches the assets: its partition, where its files live, and its config.

Every asset reads its config through `load_config` and nothing else, so changing how config reaches
assets (observed, content-addressed section snapshots) touches this one place. Each asset declares the
sections it reads next to its own definition (`deps=config_deps("model", "training", "seed")`); what
`load_config` returns exposes only those, so reading an undeclared section fails at once (and in the
graph tests) instead of silently escaping lineage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.errors import DagsterInvalidPropertyError

from gan_assets.core.config import SECTIONS, ExperimentConfig, load_experiment, parse_experiment, section_hash
from gan_assets.core.data.fits import check_experiment_fits
from gan_assets.core.data.images import Examples
from gan_assets.core.evaluation.classifier import check_classifier_fits_memory
from gan_assets.core.evaluation.metrics.inception import check_inception_file
from gan_assets.core.models.footprint import check_model_fits_memory
from gan_assets.core.storage import StoredFileError, check_experiment_key, read_json
from gan_assets.resources.store import ExperimentStore

# One partition per YAML file in experiments/; the key is the file name without `.yaml`.
experiments_partitions = dg.DynamicPartitionsDefinition(name="experiments")
CONFIG_SECTIONS = ("seed", *SECTIONS)  # the top-level seed is a section of its own


# The lineage view labels a node by the last part of its key only: `config/dataset_yaml` would read `dataset`, beside the
# real `dataset` stage. `config/dataset_yaml` reads as what it is, a section of the experiment's YAML.
CONFIG_SOURCE_SUFFIX = "_yaml"


def config_key(section: str) -> dg.AssetKey:
    """`config/<section>_yaml`: the observable source of one YAML section."""
    return dg.AssetKey(["config", section + CONFIG_SOURCE_SUFFIX])


def section_of(key: dg.AssetKey) -> str | None:
    """The section a config source's key observes; None for any other key."""
    if len(key.path) == 2 and key.path[0] == "config" and key.path[1].endswith(CONFIG_SOURCE_SUFFIX):
        return key.path[1].removesuffix(CONFIG_SOURCE_SUFFIX)
    return None


def config_deps(*sections: str) -> list[dg.AssetKey]:
    """The `deps` of an asset that reads `sections`: its lineage, and exactly what makes it stale when edited."""
    unknown = [s for s in sections if s not in CONFIG_SECTIONS]
    if unknown:
        raise ValueError(f"unknown config sections {unknown}; known: {CONFIG_SECTIONS}")
    return [config_key(section) for section in sections]


def declared_sections(context: dg.AssetExecutionContext) -> tuple[str, ...]:
    """The config sections the running asset declared in its `deps` (all of them for a context that is
    bound to no asset, as `build_asset_context()` alone gives)."""
    try:
        deps = context.assets_def.specs_by_key[context.asset_key].deps
    except DagsterInvalidPropertyError:
        return CONFIG_SECTIONS
    return tuple(section for dep in deps if (section := section_of(dep.asset_key)) is not None)


class UndeclaredSectionError(AttributeError):
    """An asset read a config section it does not depend on: its lineage would be wrong."""


class DeclaredConfig:
    """The experiment config as one asset may read it: only the sections it declared.

    Attribute access is that of `ExperimentConfig`; an undeclared section raises. `record()` is the
    whole effective config, for metadata (recording what made a result is not reading it).
    """

    def __init__(self, config: ExperimentConfig, sections: tuple[str, ...], asset: str, log: Any = None) -> None:
        self._config, self._sections, self._asset, self._log = config, frozenset(sections), asset, log
        self.loaded_at = time.perf_counter()  # assets load their config first: their compute starts here
        if log is not None:
            log.info(f"{asset} started")

    def finished(self) -> float:
        """Seconds since the asset loaded its config; logs the stage's end line."""
        seconds = time.perf_counter() - self.loaded_at
        if self._log is not None:
            self._log.info(f"{self._asset} finished in {seconds:.1f} s")
        return seconds

    def __getattr__(self, name: str) -> Any:
        if name in CONFIG_SECTIONS and name not in self._sections:
            raise UndeclaredSectionError(
                f"asset {self._asset} reads config section {name!r} but declares only {sorted(self._sections)}: "
                f"add it to the asset's config_deps so editing {name!r} makes it stale")
        return getattr(self._config, name)

    def record(self) -> dict[str, Any]:
        return json.loads(self._config.model_dump_json())

    def for_checks(self) -> ExperimentConfig:
        """The whole config, for checks that refuse an input but never shape this asset's value (the dataset
        refusing a batch larger than its train split): such reads need not make the asset stale."""
        return self._config


def load_config(context: dg.AssetExecutionContext, store: ExperimentStore, data: Examples | None = None
                ) -> DeclaredConfig:
    """The effective config of the partition being materialized, as Dagster last observed it, checked against
    `data` (the dataset this stage reads) when given.

    Every section comes from the content-addressed snapshot of its latest observation, so an edit
    saved after the observation (or mid-run) cannot leak into this materialization. Sections never
    observed (a direct invocation, a fresh instance) are read from the file, and the log says so.
    """
    config = _load_declared(context, store)
    if data is not None:
        check_against_data(config, data)
    return config


def check_against_data(config: DeclaredConfig, data: Examples) -> None:
    """Every setting against the data it will meet, before the stage's work. Each stage that reads the data checks
    all of them: an edit reruns only the stages that read the edited section, and each must fail before its own
    work (a gallery edit reruns only the gallery), naming the field and the limit."""
    whole = config.for_checks()
    check_experiment_fits(data, whole)
    check_model_fits_memory(whole.model, data.shape, len(data.class_names))
    check_classifier_fits_memory(data.shape, len(data.class_names), whole.evaluator)
    if whole.evaluation.inception.weights is not None:
        check_inception_file(whole.evaluation.inception.weights)


def _load_declared(context: dg.AssetExecutionContext, store: ExperimentStore) -> DeclaredConfig:
    key = check_experiment_key(context.partition_key)
    sections = declared_sections(context)
    asset = context.asset_key.to_user_string() if sections != CONFIG_SECTIONS else "<unbound context>"
    raw, unobserved = {}, []
    for section in CONFIG_SECTIONS:
        version = observed_version(context.instance, config_key(section), key)
        path = store.snapshot_path(section, version) if version else None
        if path is None or not path.exists():
            unobserved.append(section)
            continue
        raw[section] = read_snapshot(path, version)
    if not unobserved:
        return DeclaredConfig(parse_experiment(raw, origin=f"observed config of {key}"), sections, asset, context.log)
    context.log.info(f"sections {unobserved} never observed: reading {store.experiment_file(key)}")
    return DeclaredConfig(load_experiment(store.experiment_file(key)), sections, asset, context.log)


def read_snapshot(path: Path, version: str) -> Any:
    """An observed section value; its file name is its sha256, so a corrupted or edited snapshot is refused."""
    value = read_json(path)
    if section_hash(value) != version:
        raise StoredFileError(f"{path} does not hold the section value observed as {version[:12]}… (corrupted or "
                              "edited): delete it and observe the config again (the observe_config job)")
    return value


def observed_versions(context: dg.AssetExecutionContext, sections: tuple[str, ...] | None = None
                      ) -> dict[str, str | None]:
    """The observed version of each config section the running asset declared, for its metadata.

    Dagster's own input-version tags do not resolve partitions of observed sources, so the versions
    a materialization was computed from are recorded here, where the retrain schedule compares them.
    """
    return {section: observed_version(context.instance, config_key(section), context.partition_key)
            for section in sections or declared_sections(context)}


def observed_version(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> str | None:
    record = instance.get_latest_data_version_record(key, is_source=True, partition_key=partition)
    if record is None or record.asset_observation is None:
        return None
    return record.asset_observation.tags.get("dagster/data_version")


def config_metadata(config: DeclaredConfig | ExperimentConfig) -> dict[str, Any]:
    """The effective config, recorded on every materialization so a result names what made it, and the
    asset's compute time (from loading its config to now: what `make run` compares its wall time with)."""
    if not isinstance(config, DeclaredConfig):
        return {"config": dg.MetadataValue.json(json.loads(config.model_dump_json()))}
    return {"config": dg.MetadataValue.json(config.record()), "compute_seconds": round(config.finished(), 3)}


__all__ = ["CONFIG_SECTIONS", "DeclaredConfig", "check_against_data",
           "config_deps", "config_key", "config_metadata", "experiments_partitions",
           "load_config", "observed_version", "observed_versions"]
