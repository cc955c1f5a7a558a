"""Persistence for every asset value, so asset bodies never open files of their own outputs.

Each value lands at `<root>/experiments/<partition>/<asset>.<ext>`, its format chosen by its type:
Arrow tables and DataFrames → Parquet (read back as the type the reading asset asks for: a table, a
DataFrame, the dataset's `Examples` or a `ReferenceBatch`), a `RunManifest` → JSON with its run directory relative to the
root (a moved or copied data directory keeps working), other dicts → JSON, the evaluator →
safetensors. Writes go through `core.storage` (temp file, fsync, rename), so a failed write leaves the
previous value readable; a stored file that cannot be read fails naming the file.

The root is a setting of the deployment, not of a run: `io_manager_at(root)` is what `build_definitions`
binds, an IO manager definition with an empty config schema, so a launchpad config naming a `root` is
refused by Dagster's config validation before the run starts (it could otherwise write anywhere).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
from safetensors import safe_open

from gan_assets.core.data.images import Examples, decode_table
from gan_assets.core.data.reference import ReferenceBatch
from gan_assets.core.data.reference import from_table as reference_from_table
from gan_assets.core.evaluation.classifier import Classifier
from gan_assets.core.storage import (
    StoredFileError,
    experiment_path,
    read_json,
    read_parquet,
    read_weights,
    remove_stale_temps,
    save_weights,
    write_json_atomic,
    write_parquet_atomic,
)
from gan_assets.core.training.manifest import RunManifest

EXTENSIONS = ("parquet", "json", "safetensors")
RUN_DIR_KEY = "run_dir"  # in a stored manifest: the run directory, relative to the storage root


class ExperimentIOManager(dg.ConfigurableIOManager):
    """Bound as a deployment setting through `io_manager_at`; constructing it directly is for tests."""

    root: str = "data"

    def _base(self, context: dg.OutputContext | dg.InputContext) -> Path:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return experiment_path(self.root, partition, context.asset_key.path[-1])

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        base = self._base(context)
        remove_stale_temps(base.parent)  # temps of writes a killed run left here
        if isinstance(obj, pd.DataFrame):
            obj = pa.Table.from_pandas(obj, preserve_index=False)
        if isinstance(obj, pa.Table):
            path = write_parquet_atomic(obj, base.with_suffix(".parquet"))
        elif isinstance(obj, RunManifest):
            path = write_json_atomic(self._manifest_payload(obj), base.with_suffix(".json"))
        elif isinstance(obj, dict):
            path = write_json_atomic(obj, base.with_suffix(".json"))
        elif isinstance(obj, Classifier):
            path = save_weights(obj, base.with_suffix(".safetensors"), {"init_kwargs": json.dumps(obj.init_kwargs)})
        else:
            raise TypeError(f"{context.asset_key.to_user_string()}: no storage format for {type(obj).__name__}")
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_partitions and not context.has_partition_key:
            return self._load_every_partition(context)
        return self._load(context, self._stored(self._base(context)))

    def _load_every_partition(self, context: dg.InputContext) -> dict[str, Any]:
        """{partition: value} for an unpartitioned asset reading every experiment (the leaderboard). A
        partition with nothing stored (not run yet: routine, a debug line) or a file that cannot be read (a warning)
        is left out: one bad experiment never blocks the others (the reader lists what is missing)."""
        values = {}
        for key in context.asset_partition_keys:
            try:
                values[key] = self._load(context, self._stored(experiment_path(self.root, key, context.asset_key.path[-1])))
            except FileNotFoundError as err:
                context.log.debug(f"{context.asset_key.to_user_string()} of {key!r} left out: {err}")
            except (StoredFileError, ValueError) as err:
                context.log.warning(f"{context.asset_key.to_user_string()} of {key!r} left out: {err}")
        return values

    def _manifest_payload(self, manifest: RunManifest) -> dict[str, Any]:
        root = Path(self.root).resolve()
        try:
            relative = Path(manifest.run_dir).resolve().relative_to(root)
        except ValueError:
            raise ValueError(f"run directory {manifest.run_dir} is outside the storage root {root}") from None
        return {**manifest.to_dict(), RUN_DIR_KEY: relative.as_posix()}

    def _load(self, context: dg.InputContext, path: Path) -> Any:
        if path.suffix == ".parquet":
            table, wanted = read_parquet(path), context.dagster_type.typing_type
            if wanted is pa.Table:
                return table
            if wanted is Examples:  # the dataset, decoded once here instead of in every asset that reads it
                return decode_table(table)
            if wanted is ReferenceBatch:
                return reference_from_table(table)
            return table.to_pandas()
        if path.suffix == ".json":
            payload = read_json(path)
            return self._manifest(payload, path) if context.dagster_type.typing_type is RunManifest else payload
        return _load_classifier(path)

    def _manifest(self, payload: dict[str, Any], path: Path) -> RunManifest:
        return RunManifest.from_json(payload, self._run_dir(payload.get(RUN_DIR_KEY, ""), path), origin=path)

    def _run_dir(self, stored: str, path: Path) -> Path:
        """The run directory under this root. Manifests of the first releases stored it absolute: its
        `…/experiments/<partition>/runs/<key>` tail is re-rooted here, so a moved data directory still loads."""
        stored_path = Path(stored)
        if stored_path.is_absolute():
            parts = stored_path.parts
            if "runs" not in parts[:-1]:
                raise StoredFileError(f"{path} names run directory {stored!r}, not one under this storage root")
            stored_path = Path(*parts[len(parts) - parts[::-1].index("runs") - 1:])
            return path.parent / stored_path
        if ".." in stored_path.parts or not stored_path.parts:
            raise StoredFileError(f"{path} names run directory {stored!r}, outside the storage root")
        return Path(self.root) / stored_path

    def _stored(self, base: Path) -> Path:
        for ext in EXTENSIONS:
            if base.with_suffix(f".{ext}").exists():
                return base.with_suffix(f".{ext}")
        raise FileNotFoundError(f"nothing stored at {base}.* — materialize the upstream asset first")


def io_manager_at(root: str | Path) -> dg.IOManagerDefinition:
    """The `io_manager` of a deployment whose storage root is `root`. Dagster offers no way to hide a
    ConfigurableIOManager's field from run config, so this definition has no fields at all (`{}`, not None,
    which would accept and ignore any config): `resources: io_manager: config: root: ...` fails validation."""
    manager = ExperimentIOManager(root=str(root))
    return dg.IOManagerDefinition(lambda _: manager, config_schema={},
                                  description=f"Stores every asset value under {root} (set by the deployment).")


def _load_classifier(path: Path) -> Classifier:
    try:
        with safe_open(str(path), framework="pt") as handle:
            kwargs = json.loads((handle.metadata() or {})["init_kwargs"])
    except Exception as err:  # safetensors raises several types for a bad header
        raise StoredFileError(f"{path} is not a readable evaluator file ({err}): rematerialize `evaluator`") from None
    model = Classifier(**kwargs)
    model.load_state_dict(read_weights(path))
    return model.eval()
