"""The model leaves the pipeline: a checkpoint's sampler exported, then loaded in a fresh Python that cannot import this
project, reproduces the pipeline's own samples for the same z; the card records it; a failed export leaves nothing.

Tolerance: the program and the pipeline run the same CPU kernels in fp32, so their samples agree to 1e-6 (observed:
bit-identical); the program's output is the pipeline's [-1, 1] images as (clamp(x, -1, 1) + 1) / 2.
"""

import ast
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from gan_assets.core.config import parse_experiment
from gan_assets.core.data.images import rows_by_id
from gan_assets.core.data.reference import select_reference
from gan_assets.core.data.sources import load_dataset
from gan_assets.core.evaluation.loading import load_generator
from gan_assets.core.evaluation.sampling import class_labels, generate
from gan_assets.core.export import generator as export
from gan_assets.core.export.generator import (
    CARD_FILE,
    PROGRAM_FILE,
    WEIGHTS_FILE,
    ExportError,
    export_generator,
    scores_for_card,
)
from gan_assets.core.export.program import to_unit_range
from gan_assets.core.gallery.grids import checkpoint_samples, grid_inputs, grid_z
from gan_assets.core.training.likelihood import train_family_run
from gan_assets.core.training.manifest import ModeCentres
from gan_assets.core.training.run import RunInputs
from pipelines.cli import sample_export

TOLERANCE = {"rtol": 0.0, "atol": 1e-6}
GRID = 4
TRAINING = {"steps": 2, "batch_size": 16, "checkpoint_every": 2, "log_every": 2}
IMAGES = {"dataset": {"image_size": 8}, "reference_batch": {"size": 16}, "gallery": {"grid_size": GRID},
          "training": TRAINING}
RUNS = {  # name → (experiment, evaluation.sampling)
    "gan": ({**IMAGES, "model": {"z_dim": 4, "g_width": 4, "d_width": 4}}, "reference"),  # baked reference stats
    "conditional": ({**IMAGES, "model": {"z_dim": 4, "g_width": 4, "d_width": 4, "conditional": True}}, "eval"),
    "points": ({"dataset": {"source": "ring8", "num_samples": 400}, "reference_batch": {"size": 16},
                "model": {"z_dim": 2, "g_width": 8, "d_width": 8}, "training": TRAINING, "gallery": {"grid_size": 2}},
               "eval"),
    "vae": ({**IMAGES, "model": {"family": "vae", "vae": {"latent_dim": 4, "width": 4}}}, "eval"),
    "real_nvp": ({**IMAGES, "model": {"family": "real_nvp", "real_nvp": {"width": 4, "couplings": 1}}}, "eval"),
    "fvbn": ({**IMAGES, "model": {"family": "fvbn", "fvbn": {"width": 4, "layers": 1}}}, "eval"),
}
SCORES = pd.DataFrame({"name": ["step_000002", "real_floor"], "step": [2, -1], "fd": [12.5, 0.75],
                       "recall": [0.5, float("nan")]})


def trained(name: str, root: Path):
    """A 2-step run of RUNS[name] and the reference batch it was trained with."""
    raw, _ = RUNS[name]
    config = parse_experiment(raw)
    data = load_dataset(config.dataset, config.seed)
    train = data.subset("train")
    reference = select_reference(train.ids, train.labels, 16, config.model.z_dim, config.seed)
    modes = ModeCentres(((1.0, 0.0), (-1.0, 0.0)), 0.01) if name == "points" else None
    inputs = RunInputs(images=train.examples, labels=train.labels, num_classes=len(data.class_names),
                       reference_images=data.examples[rows_by_id(data, reference.ids)],
                       reference_labels=reference.labels, reference_z=reference.z, modes=modes)
    return train_family_run(config, inputs, root / "runs" / name, device="cpu", log=lambda _: None), reference


def pipeline_samples(manifest, reference, sampling):
    """What the pipeline draws for this checkpoint (the gallery's z and labels), and those z and labels."""
    entry = manifest.latest
    generator = load_generator(manifest, entry, sampling, *reference.tensors())
    if manifest.is_points:  # the scatter gallery: every reference z
        z = torch.from_numpy(reference.z)
        return generate(generator, z, class_labels(generator, len(z))), z, None
    images = checkpoint_samples(manifest, entry, reference=reference, grid_size=GRID, sampling=sampling)
    z, labels, _ = grid_inputs(generator, reference, GRID)  # a conditional G: one row per class
    return images, z, labels


def export_of(name: str, manifest, reference, out_dir: Path):
    _, sampling = RUNS[name]
    card = {"experiment": name, "scores": scores_for_card(SCORES, manifest.latest.name, "fd", "min"),
            "data_versions": {"dataset": "d" * 64}, "code_versions": {"exported_generator": "1"}}
    return export_generator(manifest, manifest.latest, weights="ema", sampling=sampling, reference=reference,
                            out_dir=out_dir, card=card)


# Runs in a fresh Python: only torch, numpy, safetensors and the standard library; this project cannot be imported.
FRESH = r'''
import hashlib, json, os, sys

class NoProject:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("gan_assets", "pipelines", "tests"):
            raise ImportError(f"{name} imported by the exported program's loader")

sys.meta_path.insert(0, NoProject())
import numpy as np
import torch
from safetensors.torch import load_file

for job in json.load(open(sys.argv[1])):
    folder = job["folder"]
    card = json.load(open(os.path.join(folder, "card.json")))
    for name, sha in card["files"].items():
        assert hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest() == sha, name
    program = torch.export.load(os.path.join(folder, "generator.pt2")).module()
    weights = load_file(os.path.join(folder, "generator.safetensors"))
    held = program.state_dict()
    assert held and all(torch.equal(weights[k], v) for k, v in held.items()), "weights are not the program's"
    z = torch.from_numpy(np.load(job["z"]))
    inputs = (z, torch.from_numpy(np.load(job["labels"]))) if "labels" in card["inputs"] else (z,)
    with torch.no_grad():
        np.save(job["out"], program(*inputs).numpy())
    os.chdir(folder)  # the card's four lines, as a user runs them beside the files
    scope = {}
    exec("\n".join(card["load"]), scope)
    assert scope["samples"].shape[0] == 16 and scope["samples"].dtype == torch.float32
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("gan_assets", "pipelines", "tests"))
assert not leaked, leaked
print("fresh process ok")
'''


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Every run of RUNS trained and exported; the exports with a program sampled once in a fresh process.
    name → (manifest, reference, exported, pipeline samples, fresh-process samples or None)."""
    root = tmp_path_factory.mktemp("export")
    made, jobs = {}, []
    for name in RUNS:
        manifest, reference = trained(name, root)
        exported = export_of(name, manifest, reference, root / "export" / name)
        samples, z, labels = pipeline_samples(manifest, reference, RUNS[name][1])
        made[name] = (manifest, reference, exported, samples)
        if exported.has_program:
            job = {"folder": str(exported.path), "z": str(root / f"{name}.z.npy"), "out": str(root / f"{name}.out.npy")}
            np.save(job["z"], z.numpy())
            if labels is not None:
                job["labels"] = str(root / f"{name}.labels.npy")
                np.save(job["labels"], labels.numpy())
            jobs.append(job)
    (root / "jobs.json").write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    scratch = tmp_path_factory.mktemp("fresh")
    result = subprocess.run([sys.executable, "-c", FRESH, str(root / "jobs.json")], cwd=scratch, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "fresh process ok" in result.stdout, result.stdout + result.stderr
    fresh = {Path(job["out"]).name.split(".")[0]: torch.from_numpy(np.load(job["out"])) for job in jobs}
    return {name: (*value, fresh.get(name)) for name, value in made.items()}


@pytest.mark.parametrize("name", ["gan", "conditional", "vae", "real_nvp"])
def test_the_exported_program_reproduces_the_pipeline_images_in_a_fresh_process(exports, name):
    manifest, _, exported, samples, fresh = exports[name]
    assert exported.has_program and fresh is not None
    assert fresh.shape == (len(samples), *manifest.shape) and fresh.dtype == torch.float32
    assert 0.0 <= fresh.min() and fresh.max() <= 1.0
    torch.testing.assert_close(fresh, to_unit_range(samples), **TOLERANCE)
    # round(x · 255): the gallery's pixels
    gallery_pixels = to_unit_range(samples).mul(255).round()
    assert torch.equal(fresh.mul(255).round(), gallery_pixels)


def test_a_point_gan_exports_its_coordinates(exports):
    manifest, reference, exported, samples, fresh = exports["points"]
    assert fresh.shape == (len(reference.z), 2)
    torch.testing.assert_close(fresh, samples, **TOLERANCE)  # raw coordinates: nothing rescaled
    assert exported.card["output"]["name"] == "points" and exported.card["output"]["shape"] == ["N", 2]


def test_the_card_says_what_it_is_where_it_came_from_and_hashes_every_other_file(exports):
    manifest, _, exported, _, _ = exports["conditional"]
    card = json.loads((exported.path / CARD_FILE).read_text())
    assert card == exported.card
    assert set(card) - {"experiment", "scores", "data_versions", "code_versions"} <= export.OWN_KEYS  # guarded keys
    assert sorted(card["files"]) == [PROGRAM_FILE, WEIGHTS_FILE]
    for name, sha in card["files"].items():
        assert hashlib.sha256((exported.path / name).read_bytes()).hexdigest() == sha
    assert sorted(exported.files) == [CARD_FILE, PROGRAM_FILE, WEIGHTS_FILE]
    assert card["family"] == "gan" and card["model"] == manifest.model.model_dump(mode="json")
    assert card["checkpoint"] == {"name": "step_000002", "step": 2, "weights": "raw", "file": manifest.latest.generator,
                                  "sha256": manifest.latest.generator_sha256}
    assert card["inputs"]["z"]["shape"] == ["N", 4] and card["inputs"]["labels"]["range"] == [0, 9]
    assert card["output"]["range"] == [0.0, 1.0] and card["output"]["shape"] == ["N", 1, 8, 8]
    assert card["program"]["batch"].startswith("dynamic") and card["program"]["dtype"] == "float32"
    assert card["sampling"]["mode"] == "eval" and "running statistics" in card["sampling"]["normalisation"]
    assert card["scores"]["checkpoint"] == {"name": "step_000002", "step": 2, "fd": 12.5, "recall": 0.5}
    assert card["scores"]["real_floor"]["recall"] is None  # NaN → null: plain JSON
    assert card["data_versions"] == {"dataset": "d" * 64} and card["experiment"] == "conditional"
    assert card["headline"] == "gan step_000002 (step 2, raw weights): fd 12.5 vs real floor 0.75"
    assert len(card["load"]) == 4 and "torch.export.load" in card["load"][1]
    assert "reference z's own batch statistics" in exports["gan"][2].card["sampling"]["normalisation"]


def test_the_fvbn_exports_weights_and_a_card_saying_why_there_is_no_program(exports):
    _, _, exported, _, fresh = exports["fvbn"]
    assert not exported.has_program and fresh is None
    assert sorted(p.name for p in exported.path.iterdir()) == [CARD_FILE, WEIGHTS_FILE]
    card = exported.card
    assert card["program"] is None and card["load"] == [] and list(card["files"]) == [WEIGHTS_FILE]
    assert "one pixel and channel at a time" in card["no_program_reason"]
    assert card["headline"].endswith("(weights and card only, no program)")


def test_a_train_mode_batch_norm_is_exported_normalising_each_call_with_its_own_statistics(exports, tmp_path):
    manifest, reference, _, _, _ = exports["gan"]
    exported = export_generator(manifest, manifest.latest, weights="ema", sampling="train", reference=reference,
                                out_dir=tmp_path / "train", card={})
    assert "each call's own batch statistics" in exported.card["sampling"]["normalisation"]
    program = torch.export.load(str(exported.path / PROGRAM_FILE)).module()
    z = grid_z(load_generator(manifest, manifest.latest), reference, GRID**2)
    expected = to_unit_range(checkpoint_samples(manifest, manifest.latest, reference=reference, grid_size=GRID,
                                                sampling="train"))
    with torch.no_grad():
        torch.testing.assert_close(program(z), expected, **TOLERANCE)  # the same batch: the same samples
        assert not torch.allclose(program(z[:4]), expected[:4], atol=1e-3)  # another batch, other statistics


def test_exporting_again_gives_the_same_files(exports, tmp_path):
    manifest, reference, exported, _, _ = exports["gan"]
    again = export_of("gan", manifest, reference, tmp_path / "again")
    assert again.files == exported.files and again.sha256 == exported.sha256  # the asset's data version


def test_a_failed_export_leaves_no_folder_and_keeps_the_previous_one(exports, tmp_path, monkeypatch):
    manifest, reference, _, _, _ = exports["gan"]

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch.export, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export_of("gan", manifest, reference, tmp_path / "first")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temp folder
    monkeypatch.undo()
    previous = export_of("gan", manifest, reference, tmp_path / "first")
    monkeypatch.setattr(export, "save_weights", broken_save)  # half-way: the program is written, the weights not
    with pytest.raises(OSError, match="disk full"):
        export_of("gan", manifest, reference, tmp_path / "first")
    monkeypatch.setattr(export, "check_reproduces", lambda *a: (_ for _ in ()).throw(ExportError("differs")))
    with pytest.raises(ExportError, match="differs"):
        export_of("gan", manifest, reference, tmp_path / "first")
    assert [p.name for p in tmp_path.iterdir()] == ["first"]
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "first").iterdir()} == previous.files


def test_the_caller_cannot_overwrite_the_cards_own_keys(exports, tmp_path):
    manifest, reference, _, _, _ = exports["fvbn"]
    with pytest.raises(ValueError, match=r"\['family'\]"):
        export_generator(manifest, manifest.latest, weights="ema", sampling="eval", reference=reference,
                         out_dir=tmp_path / "x", card={"family": "not this"})
    assert not (tmp_path / "x").exists()


def test_sample_export_draws_a_grid_with_plain_torch(exports, tmp_path, capsys):
    _, _, exported, _, _ = exports["conditional"]
    out = tmp_path / "grid.png"
    assert sample_export.main([str(exported.path), "--n", "6", "--out", str(out), "--labels", "3,4"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [str(out), exported.headline]
    assert Image.open(out).size == (2 + 3 * (8 + 2), 2 + 2 * (8 + 2))  # 6 images of 8 px, 3 per row
    assert sample_export.main([str(exports["fvbn"][2].path), "--out", str(tmp_path / "no.png")]) == 2
    assert "no program" in capsys.readouterr().err and not (tmp_path / "no.png").exists()


def test_sample_export_finds_the_newest_export_and_refuses_an_altered_file(exports, tmp_path, capsys):
    _, _, exported, _, _ = exports["gan"]
    folder = tmp_path / "experiments" / "tiny" / "export" / "abc"
    folder.mkdir(parents=True)
    for path in exported.path.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    assert sample_export.main(["--experiment", "experiments/tiny.yaml", "--storage-root", str(tmp_path), "--n", "4"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == str(folder.parent / "abc-samples.png")
    (folder / WEIGHTS_FILE).write_bytes(b"altered")
    assert sample_export.main([str(folder)]) == 2
    assert "not the file exported" in capsys.readouterr().err


def test_sample_export_imports_nothing_of_this_project():
    tree = ast.parse(Path(sample_export.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names} | {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {m for m in imported if m.split(".")[0] in ("gan_assets", "pipelines", "dagster")}
