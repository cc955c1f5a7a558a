"""`sample_gallery`: PNG grids from the reference z for every checkpoint, and a progress strip."""

import dagster as dg
import pandas as pd
import pyarrow as pa

from gan_assets.core.gallery import render_gallery
from gan_assets.core.png import markdown_image
from gan_assets.core.reference import from_table as reference_from_table
from gan_assets.core.run import RunManifest
from gan_assets.core.scoring import best_row
from gan_assets.experiment import ExperimentStore, config_deps, config_metadata, experiments_partitions, load_config


@dg.asset(partitions_def=experiments_partitions, deps=config_deps("gallery", "evaluation"),  # evaluation: best metric, sampling
          code_version="1", group_name="gan", kinds={"png"})
def sample_gallery(context: dg.AssetExecutionContext, store: ExperimentStore, gan_checkpoints: RunManifest,
                   reference_batch: pa.Table, checkpoint_scores: pd.DataFrame) -> dg.Output[dict]:
    """The best checkpoint's grid inline, every checkpoint's grid and the progress strip on disk."""
    config = load_config(context, store)
    gallery = render_gallery(gan_checkpoints, reference=reference_from_table(reference_batch),
                             grid_size=config.gallery.grid_size, sampling=config.evaluation.sampling,
                             out_dir=gan_checkpoints.run_dir / "gallery")
    best = str(best_row(checkpoint_scores, config.evaluation.best_metric, config.evaluation.best_direction)["name"])
    manifest = gallery.manifest(best)
    return dg.Output(manifest, data_version=dg.DataVersion(gallery.sha256), metadata={
        "best_checkpoint": best,
        "sampling": config.evaluation.sampling,
        "best_grid": dg.MetadataValue.path(manifest["best"]),
        "progress_strip": dg.MetadataValue.path(gallery.progress_path),
        "grid": dg.MetadataValue.md(markdown_image(gallery.arrays[best], f"samples of {best}", max_side=320)),
        "progress": dg.MetadataValue.md(markdown_image(gallery.progress, "progress over training", max_side=480)),
        **config_metadata(config),
    })
