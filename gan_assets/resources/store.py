"""The `store` resource: where experiment files are read from and where each experiment's outputs are written.

Both folders are settings of the deployment: `store_at` binds them in a resource definition with an empty
config schema, so a run's config (the launchpad) cannot point a run at other files or another storage root.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from gan_assets.core.storage import EXPERIMENT_KEY, check_experiment_key


class ExperimentStore(dg.ConfigurableResource):
    """Where experiment files are read from and where each experiment's outputs are written. Bound through
    `store_at` by the deployment; assets and sensors receive this object (their `store: ExperimentStore`)."""

    experiments_dir: str = "experiments"
    storage_root: str = "data"

    def experiment_file(self, key: str) -> Path:
        return Path(self.experiments_dir) / f"{check_experiment_key(key)}.yaml"

    def experiment_keys(self) -> list[str]:
        """The stems of `*.yaml` files that are valid keys (`invalid_experiment_files` lists the others)."""
        return sorted(p.stem for p in Path(self.experiments_dir).glob("*.yaml") if EXPERIMENT_KEY.fullmatch(p.stem))

    def invalid_experiment_files(self) -> list[str]:
        return sorted(p.name for p in Path(self.experiments_dir).glob("*.yaml") if not EXPERIMENT_KEY.fullmatch(p.stem))

    def snapshot_path(self, section: str, version: str) -> Path:
        """The content-addressed snapshot of one observed section value (its version is its sha256)."""
        return Path(self.storage_root) / "config_snapshots" / section / f"{version}.json"


def store_at(experiments_dir: str | Path, storage_root: str | Path) -> dg.ResourceDefinition:
    """The `store` of a deployment: no config fields (`{}`, not None, which would accept and ignore any config),
    so `resources: store: config: storage_root: ...` in a run's config fails validation before the run starts."""
    store = ExperimentStore(experiments_dir=str(experiments_dir), storage_root=str(storage_root))
    return dg.ResourceDefinition(lambda _: store, config_schema={},
                                 description=f"Experiment files in {experiments_dir}, outputs under {storage_root} "
                                             "(set by the deployment).")
