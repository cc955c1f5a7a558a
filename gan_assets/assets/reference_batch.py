"""`reference_batch`: a fixed class-stratified batch of real train examples and a fixed batch of z."""


import dagster as dg
import pyarrow as pa

from gan_assets.assets.experiment_config import config_deps, config_metadata, experiments_partitions, load_config
from gan_assets.core.data.images import Examples, PointSet, rows_by_id
from gan_assets.core.data.preview import scatter
from gan_assets.core.data.reference import select_reference, to_table
from gan_assets.core.png import grid_array, markdown_image, uint8_to_signed
from gan_assets.resources.store import ExperimentStore


@dg.asset(partitions_def=experiments_partitions, deps=config_deps("reference_batch", "model", "seed"),  # model: z_dim
          code_version="1", group_name="gan", kinds={"parquet"})
def reference_batch(context: dg.AssetExecutionContext, store: ExperimentStore,
                    dataset: Examples) -> dg.Output[pa.Table]:
    """Chosen once with the experiment's seed and never replaced: D's and G's reference batches."""
    config = load_config(context, store, dataset)
    train = dataset.subset("train")
    batch = select_reference(train.ids, train.labels, config.reference_batch.size, config.model.z_dim, config.seed)
    examples = dataset.examples[rows_by_id(dataset, batch.ids)]
    thumbnail = (scatter(examples, batch.labels) if isinstance(dataset, PointSet)  # 2-D points: coloured by mode
                 else grid_array(uint8_to_signed(examples), nrow=8))
    return dg.Output(to_table(batch), data_version=dg.DataVersion(batch.content_hash()), metadata={
        "dagster/row_count": len(batch.ids),
        "z_dim": int(batch.z.shape[1]),
        "classes": str(sorted(set(batch.labels.tolist()))),
        "thumbnail": dg.MetadataValue.md(markdown_image(thumbnail, "reference batch")),
        **config_metadata(config),
    })
