"""`dataset`: the configured source as uint8 images with a stratified train/held-out split."""


import dagster as dg
import numpy as np
import pyarrow as pa

from gan_assets.core.gallery import grid_array, markdown_image, uint8_to_signed
from gan_assets.core.images import ImageSet, to_table
from gan_assets.core.sources import load_dataset
from gan_assets.experiment import ExperimentStore, config_metadata, experiments_partitions, load_config


@dg.asset(partitions_def=experiments_partitions, code_version="1", group_name="gan", kinds={"parquet"})
def dataset(context: dg.AssetExecutionContext, store: ExperimentStore) -> dg.Output[pa.Table]:
    """Images, labels and split of the experiment's dataset; its data version is the content hash."""
    config = load_config(context, store)
    data = load_dataset(config.dataset)
    content_hash = data.content_hash()
    return dg.Output(to_table(data), data_version=dg.DataVersion(content_hash),
                     metadata={**dataset_metadata(data, content_hash), **config_metadata(config)})


def dataset_metadata(data: ImageSet, content_hash: str) -> dict:
    return {
        "dagster/row_count": len(data.ids),
        **{f"rows_{split}": int((data.split == split).sum()) for split in ("train", "held_out")},
        "shape": str(list(data.shape)),
        "source": data.source,
        "sha256": content_hash,
        "class_histogram": dg.MetadataValue.md(class_histogram_markdown(data)),
        "thumbnail": dg.MetadataValue.md(markdown_image(thumbnail_grid(data), "first images of each class")),
    }


def class_histogram_markdown(data: ImageSet) -> str:
    lines = ["| class | train | held_out |", "|---|---:|---:|"]
    for index, name in enumerate(data.class_names):
        counts = [int(((data.labels == index) & (data.split == s)).sum()) for s in ("train", "held_out")]
        lines.append(f"| {name} | {counts[0]} | {counts[1]} |")
    return "\n".join(lines)


def thumbnail_grid(data: ImageSet, per_class: int = 8) -> np.ndarray:
    """One row per class (up to 10 classes), its first `per_class` images."""
    rows = [np.flatnonzero(data.labels == c)[:per_class] for c in range(min(len(data.class_names), 10))]
    picked = np.concatenate([r for r in rows if len(r) == per_class] or [np.arange(min(len(data.ids), 64))])
    return grid_array(uint8_to_signed(data.images[picked]), nrow=per_class)
