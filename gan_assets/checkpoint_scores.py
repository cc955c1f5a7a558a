"""`checkpoint_scores`: every metric for every checkpoint, the real floor beside them, the best named."""


import hashlib
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa

from gan_assets.core.evaluator import Classifier
from gan_assets.core.images import from_table
from gan_assets.core.reference import from_table as reference_from_table
from gan_assets.core.scoring import best_row, score_checkpoints
from gan_assets.experiment import ExperimentStore, config_metadata, experiments_partitions, load_config


@dg.asset(partitions_def=experiments_partitions, code_version="1", group_name="gan", kinds={"parquet"})
def checkpoint_scores(context: dg.AssetExecutionContext, store: ExperimentStore, gan_checkpoints: dict,
                      evaluator: Classifier, dataset: pa.Table, reference_batch: pa.Table) -> dg.Output[pd.DataFrame]:
    """Scores the checkpoints its upstream manifest names, in the evaluator's features."""
    config = load_config(context, store)
    evaluation = config.evaluation
    scores = score_checkpoints(Path(gan_checkpoints["run_dir"]), gan_checkpoints, evaluator, from_table(dataset),
                               evaluation, reference_from_table(reference_batch), config.seed)
    best = best_row(scores, evaluation.best_metric, evaluation.best_direction)
    floor = scores[scores["name"] == "real_floor"].iloc[0]
    metric_columns = [c for c in scores.columns if c not in ("name", "step")]
    return dg.Output(scores, data_version=dg.DataVersion(frame_hash(scores)), metadata={
        "best_checkpoint": best["name"],
        "sampling": evaluation.sampling,
        "best_step": int(best["step"]),
        **{f"best_{c}": float(best[c]) for c in metric_columns},  # plain numbers: Dagster plots them
        **{f"real_floor_{c}": float(floor[c]) for c in metric_columns},
        "scores": dg.MetadataValue.md(scores.to_markdown(index=False, floatfmt=".4g")),
        "dagster/row_count": len(scores),
        **config_metadata(config),
    })


def frame_hash(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_json(orient="split", double_precision=15).encode()).hexdigest()
