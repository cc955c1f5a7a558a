"""`dataset`: the configured source as uint8 images (or 2-D points) with a stratified train/held-out split.

A thin adapter: the core reads and checks the data (raising before any output exists, so a bad
source never replaces the previous materialization), the IO manager writes the Parquet file.
"""

import dagster as dg
import pyarrow as pa

from gan_assets.assets.experiment_config import (
    check_against_data,
    config_deps,
    config_metadata,
    experiments_partitions,
    load_config,
)
from gan_assets.core.data.fits import check_dataset_is_usable
from gan_assets.core.data.images import ImageSet, PointSet, to_table
from gan_assets.core.data.preview import class_histogram_markdown, split_counts, thumbnail
from gan_assets.core.data.sources import load_dataset, source_fingerprint
from gan_assets.core.png import markdown_image
from gan_assets.resources.store import ExperimentStore

# Paths, sizes and mtimes of the files read: `make run` re-ingests when they changed though the config did not.
SOURCE_FINGERPRINT = "source_fingerprint"


@dg.asset(partitions_def=experiments_partitions, deps=config_deps("dataset", "seed"),
          code_version="2", group_name="gan", kinds={"parquet"})
def dataset(context: dg.AssetExecutionContext, store: ExperimentStore) -> dg.Output[pa.Table]:
    """Examples, labels and split of the experiment's dataset; its data version is the content hash."""
    config = load_config(context, store)
    fingerprint = source_fingerprint(config.dataset)  # before reading: a file changed meanwhile is read next time
    data = load_dataset(config.dataset, seed=config.seed)
    check_against_data(config, data)  # what the config alone cannot tell, before anything is stored or trained
    check_dataset_is_usable(data, config.for_checks())
    content_hash = data.content_hash()
    return dg.Output(to_table(data), data_version=dg.DataVersion(content_hash),
                     metadata={**dataset_metadata(data, content_hash), SOURCE_FINGERPRINT: fingerprint,
                               **config_metadata(config)})


def dataset_metadata(data: ImageSet | PointSet, content_hash: str) -> dict:
    points = isinstance(data, PointSet)
    return {
        "dagster/row_count": len(data.ids),
        **split_counts(data),
        "shape": str(list(data.shape)),
        "source": data.source,
        "sha256": content_hash,
        "skipped_files": int(data.extra.get("skipped_files", 0)),
        "licence": data.extra.get("licence", ""),
        "class_histogram": dg.MetadataValue.md(class_histogram_markdown(data)),
        "thumbnail": dg.MetadataValue.md(markdown_image(thumbnail(data), "scatter of the points by mode" if points
                                                        else "first images of each class")),
    }
