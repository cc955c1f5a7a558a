"""`leaderboard`: the best checkpoint of every experiment, with the config differences between them."""

import dagster as dg
import pandas as pd

from gan_assets.core.leaderboard import build_leaderboard
from gan_assets.core.scoring import frame_hash

SHOWN = ["experiment", "best_checkpoint", "fd", "real_floor_fd", "class_coverage", "class_kl", "precision", "recall"]


@dg.asset(ins={"checkpoint_scores": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
          code_version="1", group_name="comparison", kinds={"parquet"})  # unpartitioned: its own group
def leaderboard(context: dg.AssetExecutionContext, checkpoint_scores: dict[str, pd.DataFrame]) -> dg.Output[pd.DataFrame]:
    """One row per experiment; `config.*` columns name the settings that differ between them."""
    configs = {name: scored_config(context.instance, name) for name in checkpoint_scores}
    table = build_leaderboard(checkpoint_scores, configs)
    shown = [c for c in SHOWN if c in table.columns] + [c for c in table.columns if c.startswith("config.")]
    return dg.Output(table, data_version=dg.DataVersion(frame_hash(table)),
                     metadata={"dagster/row_count": len(table),
                               "leaderboard": dg.MetadataValue.md(table[shown].to_markdown(index=False, floatfmt=".4g"))})


def scored_config(instance: dg.DagsterInstance, experiment: str) -> dict:
    """The effective config recorded on that experiment's latest `checkpoint_scores` materialization."""
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("checkpoint_scores"), asset_partitions=[experiment]), limit=1).records
    return record.asset_materialization.metadata["config"].value
