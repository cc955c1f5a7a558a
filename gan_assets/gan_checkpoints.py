"""`gan_checkpoints`: DCGAN training (PacGAN's MLPs on 2-D points); checkpoints every N steps, a manifest
and the loss history."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa

from gan_assets.core.config import ExperimentConfig
from gan_assets.core.gallery import markdown_png
from gan_assets.core.guards import d_domination, weights_are_finite
from gan_assets.core.images import ImageSet, PointSet, decode_table, rows_by_id
from gan_assets.core.plots import render_loss_curves_png
from gan_assets.core.reference import from_table as reference_from_table
from gan_assets.core.sources.mixtures import mixture_modes
from gan_assets.core.trainer import FAKE_LABEL_WARNING, RunInputs, history_frame, run_key, train_run
from gan_assets.experiment import (
    ExperimentStore,
    config_deps,
    config_metadata,
    experiments_partitions,
    load_config,
    observed_versions,
)

CODE_VERSION = "1"
CHECKS = [
    # blocking: a run with NaN/inf weights must not feed evaluation
    dg.AssetCheckSpec("finite_weights", asset="gan_checkpoints", blocking=True,
                      description="every tensor of every checkpoint is finite"),
    dg.AssetCheckSpec("d_domination", asset="gan_checkpoints",
                      description="D's loss near 0 for most late logged steps while G's loss rises"),
]


class TrainingRun(dg.Config):
    """One-off launch options; they never change what the asset depends on."""

    fresh_run: bool = False  # train from scratch in a new run directory instead of resuming


# Two trainings never share one accelerator: limit the `gpu` pool (see the README).
@dg.asset(partitions_def=experiments_partitions, deps=config_deps("gan_checkpoints"),
          code_version=CODE_VERSION, group_name="gan", pool="gpu",
          kinds={"pytorch", "safetensors"}, check_specs=CHECKS)
def gan_checkpoints(context: dg.AssetExecutionContext, config: TrainingRun, store: ExperimentStore,
                    dataset: pa.Table, reference_batch: pa.Table):
    """Train (or resume) the run keyed by config + upstream data; the manifest lists its checkpoints."""
    run_options, config = config, load_config(context, store)
    data, reference = decode_table(dataset), reference_from_table(reference_batch)
    upstream = {"dataset": data.content_hash(), "reference_batch": reference.content_hash()}
    key = run_key(config, upstream, CODE_VERSION)
    if run_options.fresh_run:  # a retry of this Dagster run still resumes its own fresh directory
        key = f"{key}-fresh-{context.run.run_id[:8]}"
    run_dir = (store.output_dir(context.partition_key) / "runs" / key).resolve()
    if config.training.fake_label > 0:
        context.log.warning(FAKE_LABEL_WARNING.format(beta=config.training.fake_label))
    train = data.subset("train")
    inputs = RunInputs(train.examples, train.labels, len(data.class_names),
                       data.examples[rows_by_id(data, reference.ids)], reference.labels, reference.z,
                       modes=point_modes(data))
    manifest = train_run(config, inputs, run_dir, log=context.log.info)
    manifest["run_dir"] = str(run_dir)
    history = history_frame(run_dir, manifest)
    # what this training was computed from, for the retrain schedule's staleness test
    inputs = {f"config/{k}": v for k, v in observed_versions(context, "gan_checkpoints").items()} | upstream
    metadata = {**training_metadata(manifest, history, run_dir, config), "input_versions": dg.MetadataValue.json(inputs)}
    yield dg.Output(manifest, data_version=dg.DataVersion(manifest["checkpoints"][-1]["generator_sha256"]),
                    metadata=metadata)
    yield from training_checks(run_dir, manifest, history)


def point_modes(data: ImageSet | PointSet) -> dict | None:
    """Where a 2-D mixture's modes are, for the manifest (the scatter gallery draws them); None for images."""
    if not isinstance(data, PointSet):
        return None
    centers, std = mixture_modes(data.source)
    return {"centers": centers.tolist(), "std": std}


def training_metadata(manifest: dict, history: pd.DataFrame, run_dir: Path, config: ExperimentConfig) -> dict:
    last, timing = history.iloc[-1], manifest.get("timing", {})
    return {
        "run_dir": dg.MetadataValue.path(str(run_dir)),
        "checkpoints": len(manifest["checkpoints"]),
        "steps_per_second": float(timing.get("steps_per_second", float("nan"))),
        "images_per_second": float(timing.get("images_per_second", float("nan"))),
        "device": manifest["device"],
        **{f"final_{name}": float(last[name]) for name in ("loss_d", "loss_g", "d_x", "d_g_z")},
        "loss_curves": dg.MetadataValue.md(markdown_png(render_loss_curves_png(history), "losses")),
        **config_metadata(config),
    }


def training_checks(run_dir: Path, manifest: dict, history: pd.DataFrame):
    finite, facts = weights_are_finite(run_dir, manifest)
    yield dg.AssetCheckResult(check_name="finite_weights", passed=finite, metadata=facts)
    balanced, facts = d_domination(history)
    yield dg.AssetCheckResult(check_name="d_domination", passed=balanced, severity=dg.AssetCheckSeverity.WARN,
                              metadata=facts)
