"""`exported_generator` materialized through Dagster on a tiny conditional experiment: the folder of the best
checkpoint, its metadata, its data version (a hash of the files) and the card's record of where it came from."""

import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import build_definitions
from tests.conftest import TINY_EXPERIMENT, experiment_instance

UP_TO_EXPORT = ["dataset", "reference_batch", "evaluator", "gan_checkpoints", "checkpoint_scores", "exported_generator"]


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetMaterialization]:
    return {e.asset_key.to_user_string(): e.event_specific_data.materialization
            for e in result.get_asset_materialization_events()}


def test_exported_generator_exports_the_best_checkpoint(experiments_dir, storage_root):
    raw = {**TINY_EXPERIMENT, "model": {**TINY_EXPERIMENT["model"], "conditional": True}}
    instance = experiment_instance(experiments_dir, "tiny-cond", raw)
    job = build_definitions(storage_root, experiments_dir, device="cpu").resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(partition_key="tiny-cond", instance=instance,
                                    asset_selection=[dg.AssetKey(k) for k in UP_TO_EXPORT])
    assert result.success
    done = materializations(result)
    export, scores = done["exported_generator"].metadata, done["checkpoint_scores"].metadata
    best = scores["best_checkpoint"].value
    folder = Path(export["export_dir"].value)
    manifest = result.output_for_node("gan_checkpoints")
    entry = next(e for e in manifest.checkpoints if e.name == best)
    # <root>/experiments/<partition>/export/<sha256 of the sampled weights, 16 hex>/
    assert folder == storage_root / "experiments" / "tiny-cond" / "export" / entry.generator_sha256[:16]
    assert export["dagster/uri"].value == folder.resolve().as_uri()
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert export["files"].value == files and sorted(files) == ["card.json", "generator.pt2", "generator.safetensors"]
    version = hashlib.sha256("".join(f"{n} {s}\n" for n, s in sorted(files.items())).encode()).hexdigest()
    assert done["exported_generator"].tags["dagster/data_version"] == version
    assert export["best_checkpoint"].value == best and export["has_program"].value is True
    assert export["best_fd"].value == pytest.approx(scores["best_fd"].value, rel=5e-4)  # scores' metadata is rounded
    assert export["real_floor_fd"].value == pytest.approx(scores["real_floor_fd"].value, rel=5e-4)
    assert export["headline"].value.startswith(f"gan {best} (step {entry.step}, raw weights): fd ")
    assert "vs real floor" in export["headline"].value
    card = json.loads((folder / "card.json").read_text())
    assert card["experiment"] == "tiny-cond" and card["config"]["model"]["conditional"] is True
    assert card["inputs"]["labels"]["range"] == [0, 9] and card["inputs"]["z"]["shape"] == ["N", 16]
    assert card["scores"]["checkpoint"]["name"] == best and card["scores"]["real_floor"]["name"] == "real_floor"
    for key in ("dataset", "reference_batch", "gan_checkpoints", "checkpoint_scores"):  # as the instance recorded
        assert card["data_versions"][key] == done[key].tags["dagster/data_version"], key
    assert card["data_versions"]["training_run"] == manifest.run_dir.name
    assert card["code_versions"]["exported_generator"] == "1"
    stored = json.loads((storage_root / "experiments" / "tiny-cond" / "exported_generator.json").read_text())
    assert stored["path"] == str(folder) and stored["sha256"] == version
