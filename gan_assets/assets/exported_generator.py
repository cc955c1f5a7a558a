"""`exported_generator`: the best checkpoint's sampler as a folder that loads without this project (a torch.export
program, safetensors weights, a JSON card; gan_assets/core/export/generator.py)."""

from importlib.metadata import PackageNotFoundError, version

import dagster as dg
import pandas as pd

from gan_assets.assets.experiment_config import config_deps, config_metadata, experiments_partitions, load_config
from gan_assets.assets.gan_checkpoints import CODE_VERSION as TRAINING_CODE_VERSION
from gan_assets.core.data.reference import ReferenceBatch
from gan_assets.core.evaluation.loading import generator_file
from gan_assets.core.evaluation.scoring import REAL_FLOOR, best_row, frame_hash
from gan_assets.core.export.generator import export_generator, scores_for_card
from gan_assets.core.storage import experiment_path
from gan_assets.core.training.manifest import RunManifest
from gan_assets.resources.store import ExperimentStore

CODE_VERSION = "1"
UPSTREAM = ("dataset", "reference_batch", "gan_checkpoints", "checkpoint_scores")

DESCRIPTION = """The best checkpoint's sampler, taken out of the pipeline: `<storage root>/experiments/<experiment>/
export/<sha256 of its weights, 16 hex>/` holds `generator.pt2` (a `torch.export` program: z, and labels for a
conditional G, in; float32 images in [0, 1] NCHW out, or a 2-D GAN's points), `generator.safetensors` and `card.json`
(family, config, scores beside the real floor, data and code versions, sha256 of each file, four lines that load it
in plain torch). The FVBN exports weights and card only (its card says why). `make sample-export` draws a grid."""


# evaluation: the best metric that picks the checkpoint, the sampling mode and the weights (ema or raw) it exports
@dg.asset(partitions_def=experiments_partitions, deps=config_deps("evaluation"), code_version=CODE_VERSION,
          group_name="gan", kinds={"pytorch", "safetensors"}, description=DESCRIPTION)
def exported_generator(context: dg.AssetExecutionContext, store: ExperimentStore, gan_checkpoints: RunManifest,
                       checkpoint_scores: pd.DataFrame, reference_batch: ReferenceBatch) -> dg.Output[dict]:
    config = load_config(context, store)
    evaluation = config.evaluation
    best = str(best_row(checkpoint_scores, evaluation.best_metric, evaluation.best_direction)["name"])
    entry = next(e for e in gan_checkpoints.checkpoints if e.name == best)
    source_sha = entry.sha256_of(generator_file(entry, evaluation.generator))
    out_dir = experiment_path(store.storage_root, context.partition_key, "export", source_sha[:16])
    card = {"experiment": context.partition_key, "config": config.record(),
            "scores": scores_for_card(checkpoint_scores, best, evaluation.best_metric, evaluation.best_direction),
            "data_versions": data_versions(context, reference_batch, checkpoint_scores, gan_checkpoints),
            "code_versions": code_versions()}
    exported = export_generator(gan_checkpoints, entry, weights=evaluation.generator, sampling=evaluation.sampling,
                                reference=reference_batch, out_dir=out_dir, card=card)
    scores = card["scores"]
    metric = evaluation.best_metric
    return dg.Output(exported.to_dict(), data_version=dg.DataVersion(exported.sha256), metadata={
        "export_dir": dg.MetadataValue.path(str(exported.path)),
        "dagster/uri": dg.MetadataValue.path(exported.path.resolve().as_uri()),
        "headline": exported.headline,
        "best_checkpoint": best,
        f"best_{metric}": scores["checkpoint"].get(metric),
        f"{REAL_FLOOR}_{metric}": scores[REAL_FLOOR].get(metric),
        "family": exported.card["family"],
        "has_program": exported.has_program,
        **({"no_program_reason": exported.card["no_program_reason"]} if not exported.has_program else {}),
        "sampling": evaluation.sampling,
        "files": dg.MetadataValue.json(exported.files),  # every file → sha256
        "load": dg.MetadataValue.md("```python\n" + "\n".join(exported.card["load"]) + "\n```")
        if exported.card["load"] else "no program: see no_program_reason",
        **config_metadata(config),
    })


def data_versions(context: dg.AssetExecutionContext, reference: ReferenceBatch, scores: pd.DataFrame,
                  manifest: RunManifest) -> dict[str, str | None]:
    """The data versions this export came from: the instance's latest of each upstream asset of this experiment,
    else (a direct invocation) what can be computed here; `training_run` is the run key (config, data, code)."""
    computed = {"reference_batch": reference.content_hash(), "checkpoint_scores": frame_hash(scores)}
    recorded = {}
    for key in UPSTREAM:
        record = context.instance.get_latest_data_version_record(dg.AssetKey(key), is_source=False,
                                                                 partition_key=context.partition_key)
        event = None if record is None else record.asset_materialization
        recorded[key] = None if event is None else event.tags.get("dagster/data_version")
    return {key: recorded[key] or computed.get(key) for key in UPSTREAM} | {"training_run": manifest.run_dir.name}


def code_versions() -> dict[str, str]:
    try:
        package = version("gan_assets")
    except PackageNotFoundError:
        package = "unknown"
    return {"exported_generator": CODE_VERSION, "gan_checkpoints": TRAINING_CODE_VERSION, "gan_assets": package}
