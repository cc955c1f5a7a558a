"""`checkpoint_scores`: every metric for every checkpoint, the real floor beside them, the best named; for every model
family its held-out bits/dim where it has a likelihood, and the best checkpoint's sampling speed."""

import math

import dagster as dg
import pandas as pd
import torch

from gan_assets.assets.experiment_config import config_deps, config_metadata, experiments_partitions, load_config
from gan_assets.core.data.images import Examples
from gan_assets.core.data.reference import ReferenceBatch
from gan_assets.core.evaluation.classifier import Classifier
from gan_assets.core.evaluation.devices import released
from gan_assets.core.evaluation.loading import generator_file, load_generator, sampled_weights
from gan_assets.core.evaluation.sampling_speed import measure_sampling
from gan_assets.core.evaluation.scoring import REAL_FLOOR, best_row, frame_hash, real_floor_row, score_checkpoints
from gan_assets.core.evaluation.verdict import (
    Verdict,
    display_number,
    verdict_markdown,
    verdict_of,
    with_verdict_columns,
)
from gan_assets.core.gallery.plots import render_score_curves_png
from gan_assets.core.models.families import family_of
from gan_assets.core.models.gan.networks import model_input
from gan_assets.core.png import markdown_png
from gan_assets.core.runtime.device import prepare_device
from gan_assets.core.telemetry import tensorboard
from gan_assets.core.telemetry.tracking import log_checkpoint_scores, register_best_generator
from gan_assets.core.training.guards import mode_collapse, regression
from gan_assets.core.training.manifest import RunManifest
from gan_assets.resources.store import ExperimentStore
from gan_assets.resources.torch_device import TorchDevice
from gan_assets.resources.tracking import MlflowTracking
from gan_assets.resources.ui_images import served_image

CHECKS = [
    dg.AssetCheckSpec("mode_collapse", asset="checkpoint_scores",
                      description="best checkpoint's class coverage or recall far below the real floor"),
    dg.AssetCheckSpec("no_regression", asset="checkpoint_scores",
                      description="best score no worse than the previous materialization of this experiment"),
]


@dg.asset(partitions_def=experiments_partitions, deps=config_deps("evaluation", "seed"),
          code_version="2", group_name="gan", kinds={"parquet"},  # 2: the model family and its sampling figures
          check_specs=CHECKS)
def checkpoint_scores(context: dg.AssetExecutionContext, store: ExperimentStore, torch_device: TorchDevice,
                      gan_checkpoints: RunManifest, evaluator: Classifier, dataset: Examples,
                      reference_batch: ReferenceBatch, mlflow_tracking: MlflowTracking):
    """Scores the checkpoints its upstream manifest names, in the evaluator's features, on the deployment's device."""
    config = load_config(context, store, dataset)
    evaluation = config.evaluation
    with released(prepare_device(torch_device.settings())) as device:
        scores = score_checkpoints(gan_checkpoints, classifier=evaluator, data=dataset, evaluation=evaluation,
                                   reference=reference_batch, seed=config.seed, device=device)
        best = best_row(scores, evaluation.best_metric, evaluation.best_direction)
        figures = family_figures(gan_checkpoints, best["name"], dataset, reference_batch, evaluation.sampling,
                                 config.seed, device, evaluation.generator)
    floor = real_floor_row(scores)
    metric_columns = [c for c in scores.columns if c not in ("name", "step")]
    previous = previous_best(context, evaluation.best_metric)  # read before this materialization lands
    tracked = track_in_mlflow(context, mlflow_tracking, gan_checkpoints, scores, best, evaluation.generator)
    tracked |= scores_to_tensorboard(context, gan_checkpoints, scores)
    verdict = verdict_of(scores, best["name"])
    chart = render_score_curves_png(scores[scores["name"] != REAL_FLOOR], floor, best_step=int(best["step"]))
    # in reading order (Dagster shows metadata as inserted): the verdict, the chart, the tables, then the rest
    yield dg.Output(scores, data_version=dg.DataVersion(frame_hash(scores)), metadata={
        **verdict_entry(verdict),
        **score_chart(context, chart),
        **score_tables(with_verdict_columns(scores)),  # sortable in the UI, every row; every column in one of them
        **grade_entries(verdict),
        "verdict_json": dg.MetadataValue.json(verdict.as_dict()),  # what `make run`'s JSON line prints as `verdict`
        "best_checkpoint": best["name"],
        "sampling": evaluation.sampling,
        "generator": sampled_weights(gan_checkpoints, evaluation.generator),  # G's moving average, or G itself
        "device": str(device),  # where the samples were drawn and scored, and the sampling speed measured
        "feature_extractor": "the evaluator's penultimate layer",  # not the papers' Inception: docs/metrics.md
        **({"inception_extractor": f"{', '.join(evaluation.inception_columns)}: {evaluation.inception.label}"}
           if evaluation.inception.weights else {}),  # the network, the weights' sha256 and the resize of each column
        **figures,
        "best_step": int(best["step"]),
        **{f"best_{c}": rounded(best[c]) for c in metric_columns},  # plain numbers: Dagster plots them
        **{f"{REAL_FLOOR}_{c}": rounded(floor[c]) for c in metric_columns if pd.notna(floor[c])},
        "dagster/row_count": len(scores),
        **tracked,
        **config_metadata(config),
    })
    yield from score_checks(best, floor, previous, evaluation.best_metric, evaluation.best_direction)


def family_figures(manifest: RunManifest, best: str, dataset: Examples, reference_batch: ReferenceBatch, sampling: str,
                   seed: int, device: torch.device, weights: str = "ema") -> dict:
    """The model family, whether its bits/dim are a bound, and the best checkpoint's sampling speed (on `device`) and
    sharpness, measured alike for every family (`core/evaluation/sampling_speed.py`): metadata, not scores (timings
    vary run to run)."""
    entry = next(e for e in manifest.checkpoints if e.name == best)
    generator = load_generator(manifest, entry, sampling, *reference_batch.tensors(), device=device, weights=weights)
    held_out = model_input(torch.from_numpy(dataset.subset("held_out").examples))
    measured = measure_sampling(generator, held_out, seed=seed).as_dict() if held_out.ndim == 4 else {}
    family = manifest.model.family
    bound = None if family == "gan" else family_of(manifest.model).bits_per_dim_is_bound
    return {"family": family, **({"bits_per_dim_is_bound": bound} if bound is not None else {}),
            **{k: rounded(v) if isinstance(v, float) else v for k, v in measured.items()}}


def track_in_mlflow(context: dg.AssetExecutionContext, tracking: MlflowTracking, manifest: RunManifest,
                    scores: pd.DataFrame, best: pd.Series, weights: str) -> dict:
    """When MLflow tracking is on: the scores into the training's MLflow run, the best checkpoint's generator (the
    weights it was scored with) registered as a version of the model named after the experiment. Returns the
    metadata that links to them; a server that fails is a warning in the run's log, never a failed step."""
    settings = tracking.settings()
    if settings is None:
        return {}
    run_key, key = manifest.run_dir.name, context.partition_key
    tags = {"gan.experiment": key, "dagster.partition": key, "dagster.scores_run_id": context.run.run_id}
    run = log_checkpoint_scores(settings, run_key, scores, best["name"], context.log.warning, tags=tags)
    if run is None:  # said once; a server that failed this would fail the registration too
        return {}
    entry = next(e for e in manifest.checkpoints if e.name == best["name"])
    which = generator_file(entry, weights)
    best_scores = {c: float(best[c]) for c in scores.select_dtypes("number").columns if c != "step" and pd.notna(best[c])}
    version = register_best_generator(
        settings, run_key, key, {which: manifest.verified_path(entry, which)}, best_scores,
        f"{key}: the {which} weights of checkpoint {entry.name} (step {entry.step}) of run {run_key}",
        context.log.warning, checkpoint=entry.name, tags=tags)
    return {"mlflow_run": dg.MetadataValue.url(run.url) if run.url else run.run_id} | (
        {"mlflow_model_version": f"models:/{key}/{version}"} if version else {})


def scores_to_tensorboard(context: dg.AssetExecutionContext, manifest: RunManifest, scores: pd.DataFrame) -> dict:
    """Every checkpoint's scores beside the run's training curves in TensorBoard (`make tensorboard`); a disk that
    refuses the write is a warning, never a failed step."""
    try:
        folder = tensorboard.log_checkpoint_scores(manifest.run_dir, scores)
    except OSError as err:
        context.log.warning(f"scores not written for TensorBoard under {manifest.run_dir}: {err}")
        return {}
    return {"tensorboard_scores": dg.MetadataValue.path(str(folder))}


def score_chart(context: dg.AssetExecutionContext, png: bytes) -> dict:
    """The chart in place on the asset page where the instance can serve it (gan_assets/resources/ui_images.py), and
    always as a data-URI image behind the UI's "[Show Markdown]"."""
    inline = served_image(context.instance, png, context.partition_key, "score_curves", "scores over training")
    return ({"score_curves_inline": dg.MetadataValue.md(inline)} if inline else {}) | {
        "score_curves": dg.MetadataValue.md(markdown_png(png, "scores over training"))}


def rounded(value, digits: int = 4) -> float:
    """4 significant digits: the scores of 2,000 samples vary in the third (see the README's seed spread)."""
    value = float(value)
    return float(f"{value:.{digits}g}") if math.isfinite(value) else value


def verdict_entry(verdict: Verdict) -> dict:
    """An asset page's first entry: the verdict (the grade in bold, the reasons listed)."""
    return {"verdict": dg.MetadataValue.md(verdict_markdown(verdict))}


def grade_entries(verdict: Verdict) -> dict:
    """The grade alone and the FD ratio (a number Dagster plots over materializations), as `Verdict.as_dict()` rounds
    it (the JSON line's numbers): after the pictures, which the first screen is for."""
    shown = verdict.as_dict()
    return {"grade": verdict.grade, **({"fd_ratio": shown["fd_ratio"]} if shown["fd_ratio"] is not None else {})}


SCORE_TABLE_HEADLINE = ("fd", "precision", "recall", "class_coverage", "modes", "hq_fraction", "reverse_kl",
                        "bits_per_dim")
# Columns the asset page's metadata column shows whole at 1,280 px (tests/ui checks it): the headline table's are
# narrow (a grade, 3-digit numbers), the others' headers long (class_kl, classifier_score).
SCORE_TABLE_WIDTH = 6
MORE_TABLE_WIDTH = 4


def score_table_columns(shown: pd.DataFrame) -> dict[str, list[str]]:
    """The display table split so every column shows: `scores` (name, grade, fd_ratio and the headline scores), then
    `scores_more`, `scores_more_2`, ... (step and the evaluator's other columns) and `scores_inception`, ... (the
    `*_inception` columns), each led by the checkpoint's name and at most SCORE_TABLE_WIDTH (MORE_TABLE_WIDTH) wide."""
    metrics = [c for c in shown.columns if c not in ("name", "grade", "fd_ratio")]
    inception = [c for c in metrics if c.endswith("_inception")]
    evaluator = [c for c in metrics if c not in inception]
    first = ["name", "grade", "fd_ratio"]
    headline = [c for c in SCORE_TABLE_HEADLINE if c in evaluator][:SCORE_TABLE_WIDTH - len(first)]
    rest = [c for c in evaluator if c not in headline]
    size = MORE_TABLE_WIDTH - 1
    return {"scores": first + headline, **numbered_tables("scores_more", "name", rest, size),
            **numbered_tables("scores_inception", "name", inception, size)}


def numbered_tables(key: str, lead: str, columns: list[str], width: int) -> dict[str, list[str]]:
    """`columns` in tables of `width` after the `lead` column (the row's name), as metadata keys `key`, `key_2`, ...:
    each narrow enough for the asset page (the score tables here, the leaderboard's)."""
    return {key + (f"_{n + 1}" if n else ""): [lead, *columns[start:start + width]]
            for n, start in enumerate(range(0, len(columns), width))}


def score_tables(shown: pd.DataFrame) -> dict:
    return {key: score_table(shown[columns]) for key, columns in score_table_columns(shown).items()}


def score_table(scores: pd.DataFrame) -> dg.MetadataValue:
    """A score table as Dagster's table metadata: sortable columns, all rows, numbers rounded to what they mean
    (`display_number`)."""
    kinds = {"name": "string", "grade": "string", "step": "int", "class_coverage": "int", "modes": "int"}
    columns = [dg.TableColumn(c, kinds.get(c, "float")) for c in scores.columns]
    records = [dg.TableRecord({c: (None if pd.isna(row[c]) else str(row[c])) if kinds.get(c) == "string" else
                               display_number(c, row[c])
                               for c in scores.columns}) for _, row in scores.iterrows()]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def previous_best(context: dg.AssetExecutionContext, metric: str) -> float | None:
    """The best `metric` that the last materialization of this experiment's scores recorded."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[context.partition_key]), limit=1).records
    if not records:
        return None
    entry = records[0].asset_materialization.metadata.get(f"best_{metric}")
    return None if entry is None else float(entry.value)


def score_checks(best: pd.Series, floor: pd.Series, previous: float | None, metric: str, direction: str):
    healthy, facts = mode_collapse(best, floor)
    yield dg.AssetCheckResult(check_name="mode_collapse", passed=healthy, severity=dg.AssetCheckSeverity.WARN,
                              metadata=facts)
    steady, facts = regression(rounded(best[metric]), previous, direction)  # as recorded: previous is rounded too
    yield dg.AssetCheckResult(check_name="no_regression", passed=steady, severity=dg.AssetCheckSeverity.WARN,
                              metadata={"metric": metric, **facts})
