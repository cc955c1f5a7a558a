"""The `dataset` asset through the real IO manager: good data lands, bad data fails loudly and
leaves the previous materialization readable, with no partial file beside it."""

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from gan_assets.assets.dataset import dataset
from gan_assets.assets.experiment_config import experiments_partitions
from gan_assets.core.data.images import from_table, points_from_table
from gan_assets.resources.io_manager import ExperimentIOManager
from gan_assets.resources.store import ExperimentStore
from tests.core.data.sources.test_idx import write_mnist
from tests.core.data.sources.test_image_folder import write_classes

SMALL = {"training": {"batch_size": 4}, "reference_batch": {"size": 4}, "gallery": {"grid_size": 2},
         "evaluation": {"metrics": ["fd"]}}  # FD needs two held-out images, precision/recall four


@pytest.fixture
def world(tmp_path):
    (tmp_path / "experiments").mkdir()
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, ["exp"])
    return tmp_path, instance


def materialize(world, dataset_section: dict, **sections) -> dg.ExecuteInProcessResult:
    root, instance = world
    raw = {**SMALL, **sections, "dataset": {"image_size": 8, **dataset_section}}
    (root / "experiments" / "exp.yaml").write_text(yaml.safe_dump(raw))
    resources = {"store": ExperimentStore(experiments_dir=str(root / "experiments"), storage_root=str(root / "store")),
                 "io_manager": ExperimentIOManager(root=str(root / "store"))}
    return dg.materialize([dataset], partition_key="exp", instance=instance, resources=resources, raise_on_error=False)


def failure(result: dg.ExecuteInProcessResult) -> str:
    [event] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return event.step_failure_data.error.cause.message if event.step_failure_data.error.cause else \
        event.step_failure_data.error.message


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    [event] = result.get_asset_materialization_events()
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_bad_inputs_fail_and_keep_the_previous_materialization(world):
    root, _ = world
    folder = write_classes(root / "images")
    first = materialize(world, {"source": "image_folder", "root": str(folder)})
    assert first.success
    stored = root / "store" / "experiments" / "exp" / "dataset.parquet"
    good_hash = from_table(pq.read_table(stored)).content_hash()
    assert metadata(first)["sha256"] == good_hash and metadata(first)["skipped_files"] == 0

    (root / "raw" / "MNIST" / "raw").mkdir(parents=True)
    corrupt = folder / "dog" / "zz.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    bad_cases = [
        ({"source": "image_folder", "root": str(root / "missing")}, {}, "does not exist"),
        ({"source": "image_folder", "root": str(folder)}, {}, f"unreadable file(s) under {folder}: {corrupt}"),
        ({"source": "image_folder", "root": str(folder), "skip_bad_files": True},
         {"training": {"batch_size": 12}}, "training.batch_size 12 is larger than the 8 training examples"),
        ({"source": "mnist", "root": str(root / "raw")}, {}, "missing train-images-idx3-ubyte"),
    ]
    for section, extra, message in bad_cases:
        result = materialize(world, section, **extra)
        assert not result.success and message in failure(result), (section, failure(result))
        assert from_table(pq.read_table(stored)).content_hash() == good_hash  # the previous one, intact
        assert [p.name for p in stored.parent.iterdir()] == ["dataset.parquet"]  # nothing partial beside it

    skipped = materialize(world, {"source": "image_folder", "root": str(folder), "skip_bad_files": True})
    assert skipped.success and metadata(skipped)["skipped_files"] == 1
    assert metadata(skipped)["sha256"] == good_hash  # same good files, same data version


def test_mnist_files_twice_give_one_data_version(world):
    root, _ = world
    write_mnist(root / "raw", splits=("test",))
    section = {"source": "mnist", "root": str(root / "raw"), "splits": ["test"], "image_size": 28,
               "held_out_fraction": 0.5}
    first, second = materialize(world, section), materialize(world, section)
    assert first.success and second.success
    versions = [r.get_asset_materialization_events()[0].materialization.tags["dagster/data_version"]
                for r in (first, second)]
    assert versions[0] == versions[1] == metadata(first)["sha256"]
    assert metadata(first)["rows_train"] + metadata(first)["rows_held_out"] == 20
    assert "| 9 | 1 | 1 |" in metadata(first)["class_histogram"]  # 2 per class, half held out


def test_points_are_stored_as_coordinates_with_a_scatter(world):
    root, _ = world
    result = materialize(world, {"source": "ring8", "num_samples": 400}, seed=3)
    assert result.success
    data = points_from_table(pq.read_table(root / "store" / "experiments" / "exp" / "dataset.parquet"))
    assert data.points.shape == (400, 2) and data.extra["mode_std"] == "0.01" and data.extra["seed"] == "3"
    meta = metadata(result)
    assert meta["thumbnail"].startswith("![scatter") and meta["shape"] == "[2]"
