"""The config-change sensor observes only when an experiment file's bytes change."""

import dagster as dg

from gan_assets.experiment import ExperimentStore
from pipelines.sensors import config_change_sensor


def evaluate(tmp_path, cursor):
    store = ExperimentStore(experiments_dir=str(tmp_path), storage_root=str(tmp_path / "store"))
    context = dg.build_sensor_context(cursor=cursor, resources={"store": store})
    return config_change_sensor(context), context.cursor


def test_observes_on_any_byte_change_and_not_otherwise(tmp_path):
    (tmp_path / "a.yaml").write_text("seed: 1\n")
    first, cursor = evaluate(tmp_path, None)
    assert isinstance(first, dg.RunRequest) and first.run_key == cursor
    assert isinstance(evaluate(tmp_path, cursor)[0], dg.SkipReason)  # nothing changed
    (tmp_path / "a.yaml").write_text("# same values\nseed: 1\n")  # observation decides it is no change
    again, new_cursor = evaluate(tmp_path, cursor)
    assert isinstance(again, dg.RunRequest) and new_cursor != cursor
    (tmp_path / "b.yaml").write_text("seed: 2\n")  # a new file is a change too
    assert isinstance(evaluate(tmp_path, new_cursor)[0], dg.RunRequest)
