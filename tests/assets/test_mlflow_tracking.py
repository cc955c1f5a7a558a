"""The graph tracked in a real MLflow server (the `mlflow_tracking` resource): one MLflow run per training, found
again by a rematerialization and by the scores stage, with the config, the curves, the tags that lead back to
Dagster, every checkpoint's scores, and the best generator registered under the experiment's name."""

import dagster as dg
import pytest
from mlflow import MlflowClient

from pipelines.definitions import build_definitions
from tests.conftest import TINY_EXPERIMENT, experiment_instance

GRAPH = [dg.AssetKey(k) for k in ("dataset", "reference_batch", "evaluator", "gan_checkpoints", "checkpoint_scores")]


@pytest.fixture(scope="module")
def tracked_graph(tmp_path_factory, mlflow_server):
    root = tmp_path_factory.mktemp("tracked")
    instance = experiment_instance(root / "experiments", "tiny", TINY_EXPERIMENT)
    job = build_definitions(root / "store", root / "experiments", device="cpu").resolve_implicit_global_asset_job_def()
    run_config = {"resources": {"mlflow_tracking": {"config": {"tracking_uri": mlflow_server,
                                                                "experiment_name": "graph"}}}}
    first = job.execute_in_process(instance=instance, partition_key="tiny", asset_selection=GRAPH, run_config=run_config)
    again = job.execute_in_process(instance=instance, partition_key="tiny", run_config=run_config,
                                   asset_selection=[dg.AssetKey("gan_checkpoints"), dg.AssetKey("checkpoint_scores")])
    assert first.success and again.success
    client = MlflowClient(tracking_uri=mlflow_server)
    [run] = client.search_runs([client.get_experiment_by_name("graph").experiment_id])
    return first, again, client, run


def test_one_mlflow_run_holds_the_training_its_tags_params_and_curves(tracked_graph):
    first, again, client, run = tracked_graph
    manifest = first.output_for_node("gan_checkpoints")
    tags = run.data.tags
    assert tags["gan.run_key"] == manifest.run_dir.name
    assert tags["gan.experiment"] == tags["dagster.partition"] == "tiny"
    assert tags["dagster.run_id"] == again.run_id  # the latest Dagster run that trained (resumed) it
    assert tags["gan.code_version"] and len(tags["gan.dataset_version"]) == 64
    assert run.data.params["training.steps"] == "20" and run.data.params["model.z_dim"] == "16"
    assert run.info.status == "FINISHED"
    history = manifest.history_frame()
    curve = client.get_metric_history(run.info.run_id, "train/loss_d")
    assert sorted(m.step for m in curve) == history["step"].tolist() == [5, 10, 15, 20]  # the resume added none
    assert {m.step: m.value for m in curve} == pytest.approx(dict(zip(history["step"], history["loss_d"])))


def test_scores_and_the_registered_best_generator(tracked_graph):
    first, _, client, run = tracked_graph
    scores = first.output_for_node("checkpoint_scores")
    rows = scores[scores["name"] != "real_floor"]
    fd = client.get_metric_history(run.info.run_id, "score/fd")
    assert {m.step: m.value for m in fd} == pytest.approx(dict(zip(rows["step"], rows["fd"])))
    [materialization] = first.asset_materializations_for_node("checkpoint_scores")
    best = materialization.metadata["best_checkpoint"].value
    assert run.data.tags["gan.best_checkpoint"] == best
    [version] = client.search_model_versions("name='tiny'")  # registering the same weights again added none
    assert version.run_id == run.info.run_id and version.version == "1"
    assert float(version.tags["fd"]) == pytest.approx(float(rows.set_index("name").loc[best, "fd"]))
    assert materialization.metadata["mlflow_run"].value.endswith(f"/runs/{run.info.run_id}")
    assert materialization.metadata["mlflow_model_version"].value == "models:/tiny/1"
