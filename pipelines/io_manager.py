"""Persistence for every asset value, so asset bodies never open files of their own outputs.

Each value lands at `<root>/experiments/<partition>/<asset>.<ext>`, its format chosen by its type:
Arrow tables and DataFrames → Parquet, dicts (manifests) → JSON, the evaluator → safetensors.
Writes go through a temp file and a rename, so a failed write leaves the previous value readable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from safetensors.torch import load_file

from gan_assets.core.checkpoints import save_weights, write_json_atomic
from gan_assets.core.evaluator import Classifier
from gan_assets.core.images import write_parquet_atomic

EXTENSIONS = {"parquet": (pa.Table, pd.DataFrame), "json": (dict,), "safetensors": (Classifier,)}


class ExperimentIOManager(dg.ConfigurableIOManager):
    root: str = "data"

    def _base(self, context: dg.OutputContext | dg.InputContext) -> Path:
        key = context.asset_key.path[-1]
        partition = context.asset_partition_key if context.has_asset_partitions else "_all"
        return Path(self.root) / "experiments" / partition / key

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        base = self._base(context)
        if isinstance(obj, pd.DataFrame):
            obj = pa.Table.from_pandas(obj, preserve_index=False)
        if isinstance(obj, pa.Table):
            write_parquet_atomic(obj, base.with_suffix(".parquet"))
        elif isinstance(obj, dict):
            write_json_atomic(obj, base.with_suffix(".json"))
        elif isinstance(obj, Classifier):
            save_weights(obj, base.with_suffix(".safetensors"), {"init_kwargs": json.dumps(obj.init_kwargs)})
        else:
            raise TypeError(f"{context.asset_key.to_user_string()}: no storage format for {type(obj).__name__}")
        context.add_output_metadata({"path": dg.MetadataValue.path(str(self._stored(base)))})

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_partitions and not context.has_partition_key:
            # an unpartitioned asset reading every experiment (the leaderboard): {partition: value}
            root = Path(self.root) / "experiments"
            name = context.asset_key.path[-1]
            return {key: self._load(context, self._stored(root / key / name)) for key in context.asset_partition_keys}
        return self._load(context, self._stored(self._base(context)))

    def _load(self, context: dg.InputContext, path: Path) -> Any:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            wants_table = context.dagster_type.typing_type is pa.Table
            return table if wants_table else table.to_pandas()
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return _load_classifier(path)

    def _stored(self, base: Path) -> Path:
        for ext in EXTENSIONS:
            if base.with_suffix(f".{ext}").exists():
                return base.with_suffix(f".{ext}")
        raise FileNotFoundError(f"nothing stored at {base}.* — materialize the upstream asset first")


def _load_classifier(path: Path) -> Classifier:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        kwargs = json.loads(handle.metadata()["init_kwargs"])
    model = Classifier(**kwargs)
    model.load_state_dict(load_file(str(path)))
    return model.eval()
