"""`sample_gallery`: the per-experiment HTML gallery, a PNG grid per checkpoint and the progress strip."""

from pathlib import Path

import dagster as dg
import pandas as pd

from gan_assets.assets.checkpoint_scores import grade_entries, verdict_entry
from gan_assets.assets.experiment_config import config_deps, config_metadata, experiments_partitions, load_config
from gan_assets.core.data.images import Examples
from gan_assets.core.data.reference import ReferenceBatch
from gan_assets.core.evaluation.classifier import Classifier
from gan_assets.core.evaluation.devices import released
from gan_assets.core.evaluation.loading import sampled_weights
from gan_assets.core.evaluation.scoring import best_row
from gan_assets.core.evaluation.verdict import verdict_of
from gan_assets.core.gallery.grids import render_gallery
from gan_assets.core.gallery.page import score_chart_png, write_gallery_html
from gan_assets.core.png import markdown_image, png_bytes
from gan_assets.core.runtime.device import prepare_device
from gan_assets.core.training.manifest import RunManifest
from gan_assets.resources.store import ExperimentStore
from gan_assets.resources.torch_device import TorchDevice
from gan_assets.resources.ui_images import served_image, served_page_link

DESCRIPTION = """The best checkpoint's grid, the progress strip (one row per checkpoint, labelled by step) and the
score chart, shown in place in the latest materialization's metadata (`best_grid_inline`, `progress_inline`,
`score_curves_inline`). Everything else (per-class rows, latent interpolations, nearest training neighbours,
the batch-norm demonstration, every checkpoint's grid, the score table) is in the self-contained HTML page:
the `gallery_page` link downloads it from the webserver (remote servers included), `gallery_html` is its path on
the server (also the `gallery_html` key of `make run`'s JSON line; `make gallery` prints it)."""


# evaluation: the best metric and the sampling mode; seed: the views' extra z
@dg.asset(partitions_def=experiments_partitions, deps=config_deps("gallery", "evaluation", "seed"),
          code_version="2", group_name="gan", kinds={"png", "html"}, description=DESCRIPTION)
def sample_gallery(context: dg.AssetExecutionContext, store: ExperimentStore, torch_device: TorchDevice,
                   gan_checkpoints: RunManifest, reference_batch: ReferenceBatch, checkpoint_scores: pd.DataFrame,
                   evaluator: Classifier, dataset: Examples) -> dg.Output[dict]:
    config = load_config(context, store, dataset)
    reference = reference_batch
    out_dir = gan_checkpoints.run_dir / "gallery"
    best = str(best_row(checkpoint_scores, config.evaluation.best_metric, config.evaluation.best_direction)["name"])
    score_chart = score_chart_png(checkpoint_scores, best)  # the best checkpoint marked
    with released(prepare_device(torch_device.settings())) as device:
        gallery = render_gallery(gan_checkpoints, reference=reference, grid_size=config.gallery.grid_size,
                                 sampling=config.evaluation.sampling, out_dir=out_dir, device=device,
                                 weights=config.evaluation.generator)
        page = write_gallery_html(out_dir / "index.html", title=context.partition_key, manifest=gan_checkpoints,
                                  gallery=gallery, scores=checkpoint_scores, score_chart=score_chart, best=best,
                                  reference=reference, sampling=config.evaluation.sampling, classifier=evaluator,
                                  data=dataset, config=config.gallery, seed=config.seed, device=device,
                                  weights=config.evaluation.generator)
    manifest = gallery.manifest(best) | {"html": str(page)}
    # in reading order (Dagster shows metadata as inserted): checkpoint_scores' verdict, the pictures, the rest
    verdict = verdict_of(checkpoint_scores, best)
    return dg.Output(manifest, data_version=dg.DataVersion(gallery.sha256), metadata={
        **verdict_entry(verdict),
        **inline_images(context, gallery, best, score_chart),
        **gallery_link(context, page),
        **grade_entries(verdict),
        "best_checkpoint": best,
        "sampling": config.evaluation.sampling,
        "generator": sampled_weights(gan_checkpoints, config.evaluation.generator),  # G's moving average, or G
        "device": str(device),  # where the samples were drawn
        "gallery_html": dg.MetadataValue.path(str(page)),
        "best_grid": dg.MetadataValue.path(manifest["best"]),
        "progress_strip": dg.MetadataValue.path(gallery.progress_path),
        "grid": dg.MetadataValue.md(markdown_image(gallery.arrays[best], f"samples of {best}", max_side=320)),
        "progress": dg.MetadataValue.md(markdown_image(gallery.progress_labelled, "progress over training",
                                                       max_side=480)),
        **config_metadata(config),
    })


def gallery_link(context: dg.AssetExecutionContext, page: Path) -> dict:
    """`gallery_page`: a link the UI opens to the HTML page (saved by the browser, so it works on a remote server)."""
    link = served_page_link(context.instance, page.read_bytes(), context.partition_key, "gallery",
                            "Open the HTML gallery")
    return {} if link is None else {"gallery_page": dg.MetadataValue.md(link)}


def inline_images(context: dg.AssetExecutionContext, gallery, best: str, score_chart: bytes) -> dict:
    """The best grid, the labelled progress strip and the score chart as short markdown the UI shows in place
    (see gan_assets/resources/ui_images.py); nothing where the instance cannot serve them."""
    charts = {
        "best_grid_inline": (Path(gallery.paths[best]).read_bytes(), f"best checkpoint {best}"),  # the PNG on disk
        "score_curves_inline": (score_chart, "scores over training"),
        "progress_inline": (png_bytes(gallery.progress_labelled), "progress over training"),
    }
    entries = {}
    for key, (png, alt) in charts.items():
        markdown = served_image(context.instance, png, context.partition_key, key.removesuffix("_inline"), alt)
        if markdown is not None:
            entries[key] = dg.MetadataValue.md(markdown)
    return entries
