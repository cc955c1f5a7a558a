"""Edit an experiment and exactly the stages that read what changed run again (no daemon needed).

Each step edits the YAML, then `settle()` observes the files (config_change_sensor, no run), ticks the
automation conditions with the cursor threaded through, launches the runs each tick requests, and
repeats until quiet. A change's stages run together: one run per partition, not one per layer.
"""

import copy

import dagster as dg
import pytest
import yaml

from gan_assets.assets.experiment_config import experiments_partitions
from tests.conftest import TINY_EXPERIMENT
from tests.pipelines.automation.harness import AutomationHarness

EVERYTHING = {"dataset", "reference_batch", "evaluator", "gan_checkpoints", "checkpoint_scores", "exported_generator",
              "sample_gallery"}
TRAINING_AND_AFTER = {"gan_checkpoints", "checkpoint_scores", "exported_generator", "sample_gallery"}


def ran(settled: dict) -> dict:
    """{partition: set of assets}; the unpartitioned leaderboard appears under "leaderboard"."""
    return {("leaderboard" if partition is None else partition): set(keys) for partition, keys in settled.items()}


class Experiment:
    def __init__(self, folder, name, raw):
        self.path, self.raw = folder / f"{name}.yaml", copy.deepcopy(raw)
        self.save()

    def save(self, text: str | None = None):
        self.path.write_text(text if text is not None else yaml.safe_dump(self.raw))

    def edit(self, section: str, field: str, value):
        self.raw.setdefault(section, {})[field] = value
        self.save()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("automation")
    (root / "experiments").mkdir()
    experiment = Experiment(root / "experiments", "tiny", TINY_EXPERIMENT)
    harness = AutomationHarness(root / "store", root / "experiments", dg.DagsterInstance.ephemeral())
    harness.add_experiment("tiny")
    first = ran(harness.settle())
    harness.first_runs = harness.instance.get_runs()  # before later tests add theirs
    return harness, experiment, first, root


def test_a_new_experiment_runs_everything(world):
    _, _, first, _ = world
    assert first == {"tiny": EVERYTHING, "leaderboard": {"leaderboard"}}


def selections(runs) -> list[tuple[str | None, set[str]]]:
    """(partition, assets) of each run, oldest first."""
    return [(run.tags.get("dagster/partition"), {key.to_user_string() for key in run.asset_selection})
            for run in reversed(runs)]


def test_a_new_experiment_runs_in_two_runs_and_observes_without_one(world):
    harness, _, _, _ = world
    # every partitioned stage in one run (chained on one tick), then the leaderboard (another partitions
    # definition, so Dagster cannot put it in the same run); the sensor observed without any run
    assert selections(harness.first_runs) == [("tiny", EVERYTHING), (None, {"leaderboard"})]
    assert not [run for run in harness.first_runs if run.job_name == "observe_config"]


def test_saving_unchanged_or_reformatted_reruns_nothing(world):
    harness, experiment, _, _ = world
    experiment.save()
    assert harness.settle() == {}
    # same effective values: a comment, reversed key order, flow style and an explicit default
    same = copy.deepcopy(experiment.raw)
    same["training"]["lr_g"] = 2e-4
    experiment.save("# reformatted\n" + yaml.safe_dump(dict(reversed(list(same.items()))), default_flow_style=True))
    assert harness.settle() == {}
    experiment.save()


def test_training_edit_reruns_training_evaluation_gallery_and_leaderboard(world):
    harness, experiment, _, _ = world
    experiment.edit("training", "steps", 30)
    assert ran(harness.settle()) == {"tiny": TRAINING_AND_AFTER, "leaderboard": {"leaderboard"}}
    assert harness.last_runs == 2  # training and after in one run, then the leaderboard


def test_gallery_edit_reruns_only_the_gallery(world):
    harness, experiment, _, _ = world
    experiment.edit("gallery", "grid_size", 3)
    assert ran(harness.settle()) == {"tiny": {"sample_gallery"}}
    assert harness.last_runs == 1


def test_reingesting_identical_data_reruns_nothing(world):
    harness, _, _, _ = world
    harness.materialize({"tiny": {"dataset"}})
    assert harness.settle() == {}


def test_reverting_is_a_change_too(world):
    harness, experiment, _, _ = world
    for steps in (20, 30):  # A → B → A
        experiment.edit("training", "steps", steps)
        assert ran(harness.settle()) == {"tiny": TRAINING_AND_AFTER, "leaderboard": {"leaderboard"}}


def test_dataset_edit_reruns_everything(world):
    harness, experiment, _, _ = world
    experiment.edit("dataset", "held_out_fraction", 0.25)
    assert ran(harness.settle()) == {"tiny": EVERYTHING, "leaderboard": {"leaderboard"}}


def test_new_files_become_partitions_and_run_and_deleted_ones_leave(world):
    harness, _, _, root = world
    second = Experiment(root / "experiments", "tiny-minimax", TINY_EXPERIMENT)
    second.edit("training", "generator_loss", "minimax")
    harness.run_sensor("experiment_files_sensor")
    assert ran(harness.settle()) == {"tiny-minimax": EVERYTHING, "leaderboard": {"leaderboard"}}
    assert harness.last_runs == 2  # its six stages in one run, then the leaderboard
    second.path.unlink()
    harness.run_sensor("experiment_files_sensor")
    assert harness.instance.get_dynamic_partitions(experiments_partitions.name) == ["tiny"]
    assert (root / "store" / "experiments" / "tiny-minimax" / "checkpoint_scores.parquet").is_file()  # kept


def test_by_default_a_new_experiment_waits_for_a_click_then_its_edits_rerun(tmp_path):
    (tmp_path / "experiments").mkdir()
    experiment = Experiment(tmp_path / "experiments", "tiny", TINY_EXPERIMENT)
    harness = AutomationHarness(tmp_path / "store", tmp_path / "experiments", dg.DagsterInstance.ephemeral(),
                                train_new_experiments=False)
    harness.add_experiment("tiny")
    assert harness.settle() == {}  # opening the UI trains nothing by itself
    job = harness.defs.resolve_job_def("experiment")
    assert job.execute_in_process(partition_key="tiny", instance=harness.instance).success  # the user's click
    assert harness.settle() == {}
    experiment.raw["gallery"] = {"grid_size": 2}
    experiment.save()
    assert ran(harness.settle()) == {"tiny": {"sample_gallery"}}  # edits still rerun what they affect
