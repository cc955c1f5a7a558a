"""`leaderboard`: the best checkpoint of every experiment, with the config differences between them."""

import dagster as dg
import pandas as pd

from gan_assets.assets.checkpoint_scores import numbered_tables
from gan_assets.assets.experiment_config import experiments_partitions
from gan_assets.core.comparison.family_claims import claim_readings
from gan_assets.core.comparison.ranking import build_leaderboard
from gan_assets.core.evaluation.scoring import REAL_FLOOR, frame_hash

# The page's tables (and `make compare`'s), each narrow enough to show every column in a materialization's metadata
# column (Events, 1,280 px): the verdict and the headline scores first, then the other figures, then what differs in
# config. Each starts with the experiment. The stored table also has each score's real floor and the ranking metric.
TABLES = {
    "leaderboard": ["experiment", "grade", "fd_ratio", "fd"],
    "leaderboard_scores": ["experiment", "precision", "recall", "class_coverage"],
    "leaderboard_runs": ["experiment", "status", "family", "best_checkpoint"],
    "leaderboard_more": ["experiment", "real_floor_fd", "class_kl", "bits_per_dim"],
    "leaderboard_speed": ["experiment", "samples_per_second", "sharpness", "train_seconds"],
    "leaderboard_extra": ["experiment", "seconds_for_10000_samples", "bits_per_dim_is_bound"],
}
CONFIG_TABLE_WIDTH = 3  # config.* columns per `config_differences` table (their names are long)
METRICS_TABLE_WIDTH = 3  # other scores (KID, modes, nn_ratio, *_inception, ...) per `leaderboard_metrics` table
UNSCORED = "no scores recorded"  # never scored, or its scoring failed
# Facts recorded beside the scores (checkpoint_scores' metadata) and training (gan_checkpoints'), per experiment.
SCORE_FIGURES = ("samples_per_second", "seconds_for_10000_samples", "sampling_extrapolated", "sharpness",
                 "bits_per_dim_is_bound")
TRAINING_FIGURES = ("train_seconds",)


@dg.asset(ins={"checkpoint_scores": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
          code_version="2", group_name="comparison", kinds={"parquet"})  # unpartitioned; 2: model families
def leaderboard(context: dg.AssetExecutionContext, checkpoint_scores: dict[str, pd.DataFrame]) -> dg.Output[pd.DataFrame]:
    """One row per experiment; `config.*` columns name the settings that differ between them. An experiment
    without readable scores (never scored, or failed) is listed with its status instead of failing the board.
    `make run` and `make compare` bring it up to date after scoring; the daemon's automation does after a scheduled
    retraining; `Materialize` here does at any time."""
    configs = {name: config for name in checkpoint_scores if (config := scored_config(context.instance, name))}
    registered = context.instance.get_dynamic_partitions(experiments_partitions.name)
    missing = {name: UNSCORED for name in sorted(set(registered) | set(checkpoint_scores)) if name not in configs}
    figures = {name: latest_metadata(context.instance, "checkpoint_scores", name, SCORE_FIGURES)
               | latest_metadata(context.instance, "gan_checkpoints", name, TRAINING_FIGURES) for name in configs}
    table = build_leaderboard({name: checkpoint_scores[name] for name in configs}, configs, missing, figures)
    claims = claim_readings(table)
    tables = {key: sortable_table(table[columns]) for key, columns in leaderboard_tables(table).items()}
    return dg.Output(table, data_version=dg.DataVersion(frame_hash(table)),
                     metadata={"ranking": dg.MetadataValue.md(ranking_markdown(table)),
                               "leaderboard": tables.pop("leaderboard"),
                               "family_claims": dg.MetadataValue.md("\n".join(f"- {c}" for c in claims) or
                                                                    "(score two model families to read the claims)"),
                               **tables, "dagster/row_count": len(table)})


def leaderboard_tables(table: pd.DataFrame) -> dict[str, list[str]]:
    """The board's columns in tables of a few each, each led by the experiment: TABLES (the columns it has), then
    every other score (a column with a real floor: `leaderboard_metrics`, `leaderboard_metrics_2`, ...), then the
    config differences (`config_differences`, ...)."""
    groups = {key: [c for c in columns if c in table.columns] for key, columns in TABLES.items()}
    shown = {c for columns in groups.values() for c in columns}
    scores = [c for c in table.columns if f"{REAL_FLOOR}_{c}" in table.columns and c not in shown]
    config = [c for c in table.columns if c.startswith("config.")]
    groups |= numbered_tables("leaderboard_metrics", "experiment", scores, METRICS_TABLE_WIDTH)
    groups |= numbered_tables("config_differences", "experiment", config, CONFIG_TABLE_WIDTH)
    return {key: columns for key, columns in groups.items() if key == "leaderboard" or len(columns) > 1}


def ranking_markdown(table: pd.DataFrame) -> str:
    """The page's first answer, in lines that wrap in any column: the scored experiments best first (by FD over
    its real floor, the verdict's headline), each with its grade; then those without scores."""
    lines = []
    if "fd_ratio" in table:
        scored = table[table["status"] == "scored"].sort_values("fd_ratio", na_position="last")
        lines = [f"{n}. **{row.experiment}**: {row.grade}, "
                 + ("no FD" if pd.isna(row.fd_ratio) else f"FD {row.fd_ratio:.3g}× the real floor")
                 + f" ({row.best_checkpoint})" for n, row in enumerate(scored.itertuples(), start=1)]
    unscored = table.loc[table["status"] != "scored", "experiment"].tolist()
    if unscored:
        lines.append(f"\n{UNSCORED} (not scored yet, or the scoring failed): {', '.join(unscored)}")
    return "\n".join(lines) or "(no experiment registered)"


def leaderboard_markdown(table: pd.DataFrame) -> str:
    """The same tables as markdown, for a terminal (`make compare`); numbers to 4 significant digits."""
    return "\n\n".join(table[columns].to_markdown(index=False, floatfmt=".4g")
                        for columns in leaderboard_tables(table).values())


def sortable_table(frame: pd.DataFrame) -> dg.MetadataValue:
    """Dagster's table metadata (sortable on the page): whole numbers exact (a seed, a step count, even where an
    unscored row made the column float), other numbers to 4 significant digits, text as text."""
    def kind(column: str) -> str:
        values = frame[column].dropna()
        if pd.api.types.is_bool_dtype(frame[column].dtype):
            return "bool"
        if not pd.api.types.is_numeric_dtype(frame[column].dtype):
            return "string"
        return "int" if len(values) and (values == values.round()).all() else "float"

    def cell(value, column_kind: str):
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return None
        if column_kind in ("float", "int"):
            return int(value) if column_kind == "int" else float(f"{float(value):.4g}")
        return bool(value) if column_kind == "bool" else str(value)

    frame = frame.apply(typed)
    kinds = {c: kind(c) for c in frame.columns}
    records = [dg.TableRecord({c: cell(row[c], kinds[c]) for c in frame.columns}) for _, row in frame.iterrows()]
    return dg.MetadataValue.table(records=records,
                                  schema=dg.TableSchema(columns=[dg.TableColumn(c, kinds[c]) for c in frame.columns]))


def typed(column: pd.Series) -> pd.Series:
    """An object column (config values; a figure missing for unscored rows) as booleans or numbers where every value
    is one, so it sorts as such."""
    values = column.dropna()
    if column.dtype != object or values.empty:
        return column
    if values.map(lambda v: isinstance(v, bool)).all():
        return column.astype("boolean")
    try:
        return pd.to_numeric(column)
    except (TypeError, ValueError):
        return column


def latest_metadata(instance: dg.DagsterInstance, asset: str, experiment: str, keys: tuple[str, ...]) -> dict:
    """`keys` of the metadata of that experiment's latest materialization of `asset` (those it recorded)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[experiment]), limit=1).records
    metadata = records[0].asset_materialization.metadata if records else {}
    return {key: metadata[key].value for key in keys if key in metadata}


def scored_config(instance: dg.DagsterInstance, experiment: str) -> dict | None:
    """The effective config recorded on that experiment's latest `checkpoint_scores` materialization."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("checkpoint_scores"), asset_partitions=[experiment]), limit=1).records
    entry = records[0].asset_materialization.metadata.get("config") if records else None
    return entry.value if entry is not None else None
