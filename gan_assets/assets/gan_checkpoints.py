"""`gan_checkpoints`: training of the experiment's model family (`model.family`): the DCGAN (PacGAN's MLPs on 2-D
points), or a VAE, FVBN or Real NVP (`core/models/`); checkpoints every N steps, a manifest and the loss history.
The asset key stays `gan_checkpoints` for every family: what later stages read is the run manifest."""

import dagster as dg
import pandas as pd

from gan_assets.assets.experiment_config import (
    config_deps,
    config_key,
    config_metadata,
    experiments_partitions,
    load_config,
    observed_versions,
)
from gan_assets.core.config import ExperimentConfig
from gan_assets.core.data.images import Examples, ImageSet, PointSet, rows_by_id
from gan_assets.core.data.reference import ReferenceBatch
from gan_assets.core.data.sources.mixtures import modes_of
from gan_assets.core.gallery.plots import render_loss_curves_png
from gan_assets.core.png import markdown_png
from gan_assets.core.storage import experiment_path
from gan_assets.core.telemetry.session import training_observers
from gan_assets.core.training.likelihood import train_family_run
from gan_assets.core.training.manifest import RETRAIN_HINT, ModeCentres
from gan_assets.core.training.report import RunReport, run_report
from gan_assets.core.training.run import FAKE_LABEL_WARNING, RunInputs, run_key
from gan_assets.resources.live_events import DagsterLive
from gan_assets.resources.store import ExperimentStore
from gan_assets.resources.torch_device import TorchDevice
from gan_assets.resources.tracking import MlflowTracking
from gan_assets.resources.trainer_launch import TrainerLaunch, train_elsewhere
from gan_assets.resources.ui_images import served_image

CODE_VERSION = "2"  # 2: the G step reuses the D step's fakes; bf16 autocast where it is fast
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
@dg.asset(partitions_def=experiments_partitions, deps=config_deps("model", "training", "seed"),
          code_version=CODE_VERSION, group_name="gan", pool="gpu",
          kinds={"pytorch", "safetensors"}, check_specs=CHECKS)
def gan_checkpoints(context: dg.AssetExecutionContext, config: TrainingRun, store: ExperimentStore,
                    torch_device: TorchDevice, trainer_launch: TrainerLaunch, mlflow_tracking: MlflowTracking,
                    dataset: Examples, reference_batch: ReferenceBatch):
    """Train (or resume) the run keyed by config + upstream data; the manifest lists its checkpoints.
    The device and the launch (in process, or torchrun ranks through Dagster Pipes: `trainer_launch`) come from
    the deployment, never from the run key: they do not change the run. While it trains, it reports progress on this
    asset's page, writes TensorBoard event files into the run directory and, where `mlflow_tracking` is set, logs
    an MLflow run (core/telemetry/)."""
    run_options, config = config, load_config(context, store, dataset)
    upstream = {"dataset": dataset.content_hash(), "reference_batch": reference_batch.content_hash()}
    key = run_key(config, upstream, CODE_VERSION)
    if run_options.fresh_run:  # a retry of this Dagster run still resumes its own fresh directory
        key = f"{key}-fresh-{context.run.run_id[:8]}"
    run_dir = experiment_path(store.storage_root, context.partition_key, "runs", key).resolve()
    if config.training.fake_label > 0:
        context.log.warning(FAKE_LABEL_WARNING.format(beta=config.training.fake_label))
    train = dataset.subset("train")
    inputs = RunInputs(images=train.examples, labels=train.labels, num_classes=len(dataset.class_names),
                       reference_images=dataset.examples[rows_by_id(dataset, reference_batch.ids)],
                       reference_labels=reference_batch.labels, reference_z=reference_batch.z,
                       modes=point_modes(dataset), class_names=dataset.class_names)
    tracking = mlflow_tracking.settings()
    tags = tracking_tags(context, upstream) if tracking is not None else {}
    if trainer_launch.mode == "in_process":
        watchers = training_observers(run_dir, inputs, tracking=tracking, tags=tags, extra=[DagsterLive(context)],
                                      log=context.log.warning)
        manifest = train_family_run(config, inputs, run_dir, device=torch_device.settings(), log=context.log.info,
                                    observer=watchers)
        report = run_report(manifest)
    elif config.model.family != "gan":  # data parallelism is built for the two players' loop only
        raise dg.Failure(f"trainer_launch mode {trainer_launch.mode!r} trains model.family 'gan' only; "
                         f"{context.partition_key} is {config.model.family!r}: launch it in process")
    else:  # the same train_run in torchrun's ranks; rank 0 computes the same report and sends it through Pipes
        manifest, report = train_elsewhere(context, trainer_launch, config.record(), inputs, run_dir,
                                             torch_device.settings(), tracking=tracking, tags=tags)
    # what this training was computed from, for the retrain schedule's staleness test
    inputs = {config_key(k).to_user_string(): v for k, v in observed_versions(context).items()} | upstream
    metadata = {**loss_chart(context, manifest.history_frame()), **training_metadata(report, config),
                "input_versions": dg.MetadataValue.json(inputs)}
    finite, facts = report.checks["finite_weights"].passed, report.checks["finite_weights"].facts
    if not finite:  # never stored as the asset's value, so no later run can score it
        raise dg.Failure(f"non-finite weights in {facts['first']} of {manifest.run_dir}; {RETRAIN_HINT}",
                         metadata=facts)
    yield dg.Output(manifest, data_version=dg.DataVersion(report.data_version), metadata=metadata)
    yield dg.AssetCheckResult(check_name="finite_weights", passed=finite, metadata=facts)
    balanced = report.checks["d_domination"]
    yield dg.AssetCheckResult(check_name="d_domination", passed=balanced.passed, severity=dg.AssetCheckSeverity.WARN,
                              metadata=balanced.facts)


def tracking_tags(context: dg.AssetExecutionContext, upstream: dict[str, str]) -> dict[str, str]:
    """What leads from an MLflow run back to Dagster: the experiment (partition), the Dagster run, the code and the
    versions of the data and config sections the training was computed from."""
    versions = {f"gan.config_version.{k}": v for k, v in observed_versions(context).items() if v is not None}
    return {"gan.experiment": context.partition_key, "dagster.partition": context.partition_key,
            "dagster.run_id": context.run.run_id, "dagster.asset": "gan_checkpoints", "gan.code_version": CODE_VERSION,
            "gan.dataset_version": upstream["dataset"], "gan.reference_batch_version": upstream["reference_batch"],
            **versions}


def point_modes(data: ImageSet | PointSet) -> ModeCentres | None:
    """Where a 2-D mixture's modes are (read from the dataset table), for the scatter gallery; None for images."""
    if not isinstance(data, PointSet):
        return None
    centers, std = modes_of(data)
    return ModeCentres(tuple(tuple(c) for c in centers.tolist()), std)


def loss_chart(context: dg.AssetExecutionContext, history: pd.DataFrame) -> dict:
    """The loss curves in place on the asset page where the instance can serve them (gan_assets/resources/ui_images.py),
    and always as a data-URI image behind "[Show Markdown]"."""
    png = render_loss_curves_png(history)
    inline = served_image(context.instance, png, context.partition_key, "loss_curves", "losses")
    return ({"loss_curves_inline": dg.MetadataValue.md(inline)} if inline else {}) | {
        "loss_curves": dg.MetadataValue.md(markdown_png(png, "losses"))}


def training_metadata(report: RunReport, config: ExperimentConfig) -> dict:
    """The run's facts (core/training/report.py: the same in process and from the trainer's rank 0) and its config."""
    return {**report.facts, "run_dir": dg.MetadataValue.path(report.facts["run_dir"]), **config_metadata(config)}
