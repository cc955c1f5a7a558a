"""One checkpoint's sampler as a folder that loads without this project: a `torch.export` program, safetensors weights
and a JSON card.

- `generator.pt2`: `torch.export.save` of the sampler set up as the pipeline samples it (CPU, fp32, batch norm per
  `evaluation.sampling`), a dynamic batch dimension; z (and a conditional G's labels) in, float32 images in [0, 1]
  NCHW out (a 2-D point GAN: its (N, 2) coordinates). See program.py for why that convention.
- `generator.safetensors`: the state dict of the traced module (keys `generator.…`), what the program holds.
- `card.json`: what it is (family, model config, shapes, how it normalises), where it came from (the caller's record:
  experiment config, scores beside the real floor, data and code versions), how to load it, and the sha256 of the
  other two files.

Batch-norm modes (`sampling`): `eval` is traced as is; `reference` bakes the reference z's statistics into the
running statistics (what `for_sampling` does), so it too is an eval-mode program; `train` is traced in train mode:
the program normalises each call's batch with that batch's own statistics, as the pipeline does (a sample then
depends on the others drawn in the same call: pass the same batch to get the same samples). Nothing is refused.

Likelihood families export their sampler where torch.export traces it. The FVBN's sampler is a sequential loop of
C·H·W network passes (1,024 at 32×32) that tracing would unroll into as many copies of the network: its folder holds
weights and card only, the card saying why. The folder is written beside its target and renamed into place, so a
failed export leaves the previous one (or nothing), never half a folder.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn

from gan_assets.core.data.reference import ReferenceBatch
from gan_assets.core.evaluation.devices import CPU
from gan_assets.core.evaluation.loading import generator_file, load_generator
from gan_assets.core.evaluation.scoring import REAL_FLOOR
from gan_assets.core.export.program import TraceError, UnconditionalProgram, program_module, trace
from gan_assets.core.runtime.faults import crash_point
from gan_assets.core.storage import TEMP_SUFFIX, abandoned, file_sha256, save_weights, write_json_atomic
from gan_assets.core.training.manifest import CheckpointEntry, RunManifest

PROGRAM_FILE = "generator.pt2"
WEIGHTS_FILE = "generator.safetensors"
CARD_FILE = "card.json"
CARD_FORMAT = 1
CHECK_ROWS = 8  # seeded z the program must reproduce the eager sampler on before it is written
CHECK_TOLERANCE = 1e-5  # same CPU, fp32: observed bit-identical, this only absorbs a kernel choosing another order
NO_PROGRAM = {  # families whose sampler is not traced, and why (the card says it)
    "fvbn": "the FVBN samples one pixel and channel at a time: a Python loop of C·H·W network passes, each reading "
            "the pixels drawn before it, that torch.export would unroll into C·H·W copies of the network (1,024 at "
            "32×32). No program is exported: rebuild gan_assets.core.models.fvbn.PixelCNN from `model` and load "
            "generator.safetensors (keys without the `generator.model.` prefix) to sample it with fvbn.sample.",
}
OWN_KEYS = frozenset({"format", "family", "model", "data_shape", "classes", "checkpoint", "sampling", "program",
                      "no_program_reason", "weights", "inputs", "output", "load", "files", "headline"})


class ExportError(RuntimeError):
    """The checkpoint's sampler could not be exported (a GAN generator that torch.export cannot trace, or a program
    that does not reproduce the pipeline's samples); nothing was written."""


@dataclass(frozen=True)
class ExportedModel:
    """An export folder: its path, its card and the sha256 of every file in it (the card's too)."""

    path: Path
    card: dict[str, Any]
    files: dict[str, str]

    @property
    def has_program(self) -> bool:
        return PROGRAM_FILE in self.files

    @property
    def sha256(self) -> str:
        """One hash of every file: the same weights, program and card give the same folder version."""
        return hashlib.sha256("".join(f"{name} {sha}\n" for name, sha in sorted(self.files.items())).encode()).hexdigest()

    @property
    def headline(self) -> str:
        return self.card["headline"]

    def to_dict(self) -> dict[str, Any]:
        """What a caller stores about the export (the folder itself is the artifact)."""
        return {"path": str(self.path), "files": dict(self.files), "sha256": self.sha256,
                "has_program": self.has_program, "headline": self.headline, "card": str(self.path / CARD_FILE)}


def export_generator(manifest: RunManifest, entry: CheckpointEntry, *, weights: str, sampling: str,
                     reference: ReferenceBatch, out_dir: Path, card: dict[str, Any]) -> ExportedModel:
    """Export the sampler of `entry` (`weights`: ema or raw, as evaluation.generator; `sampling`: the batch-norm mode,
    as evaluation.sampling) into `out_dir`, replacing what is there; `card` is the caller's record merged into the
    card (experiment config, `scores` from `scores_for_card`, data and code versions), its keys never the card's own."""
    clash = sorted(set(card) & OWN_KEYS)
    if clash:  # before any work: the card's own facts are never overwritten by a caller's
        raise ValueError(f"the caller's card keys {clash} are the card's own")
    generator = load_generator(manifest, entry, sampling, *reference.tensors(), device=CPU, weights=weights)
    module = program_module(generator, manifest.is_points).float().cpu()
    program, traced, reason = program_of(module, manifest)
    body = card_body(manifest, entry, generator, weights, sampling, traced, reason)

    def fill(folder: Path) -> dict[str, Any]:
        if program is not None:
            torch.export.save(program, folder / PROGRAM_FILE)
        save_weights(module, folder / WEIGHTS_FILE, metadata={"card": CARD_FILE})
        files = {path.name: file_sha256(path) for path in sorted(folder.iterdir())}
        whole = {**card, **body, "files": files}
        whole["headline"] = headline(whole)
        write_json_atomic(whole, folder / CARD_FILE)
        return whole

    whole = write_folder_atomically(Path(out_dir), fill)
    files = {path.name: file_sha256(path) for path in sorted(Path(out_dir).iterdir())}
    return ExportedModel(Path(out_dir), whole, files)


def program_of(module: UnconditionalProgram, manifest: RunManifest
               ) -> tuple[torch.export.ExportedProgram | None, str | None, str | None]:
    """(program, how it was traced, None), or (None, None, why there is none) for a family that exports no program.
    A GAN generator that does not trace, or any program that does not reproduce its sampler, is an ExportError."""
    family = manifest.model.family
    if family in NO_PROGRAM:
        return None, None, NO_PROGRAM[family]
    try:
        # the likelihood samplers call len(z), which only strict tracing keeps symbolic
        program, traced = trace(module, z_dim_of(module.generator), strict_first=family != "gan")
    except TraceError as err:
        if family == "gan":
            raise ExportError(f"torch.export cannot trace this {family} generator: {err}") from None
        return None, None, f"torch.export could not trace the {family} sampler with a dynamic batch ({err})"
    check_reproduces(program, module)
    return program, traced, None


@torch.no_grad()
def check_reproduces(program: torch.export.ExportedProgram, module: UnconditionalProgram) -> None:
    """Refuse a program whose output for seeded z differs from the eager sampler's (on a copy: a train-mode batch
    norm updates its running statistics, which the weights file must not carry)."""
    z = torch.randn(CHECK_ROWS, z_dim_of(module.generator), generator=torch.Generator().manual_seed(0))
    labels = torch.arange(CHECK_ROWS) % max(getattr(module.generator, "num_classes", 0), 1)
    inputs = (z, labels) if getattr(module.generator, "conditional", False) else (z,)
    expected, got = copy.deepcopy(module)(*inputs), program.module()(*inputs)
    difference = (expected - got).abs().max().item()
    if not difference <= CHECK_TOLERANCE:  # NaN fails too
        raise ExportError(f"the exported program differs from the sampler by {difference:.3g} (> {CHECK_TOLERANCE}) "
                          "on seeded z: not written")


def z_dim_of(generator: nn.Module) -> int:
    return int(generator.z_dim)


def card_body(manifest: RunManifest, entry: CheckpointEntry, generator: nn.Module, weights: str, sampling: str,
              traced: str | None, reason: str | None) -> dict[str, Any]:
    """The card's own part: what the export is and how to use it (the caller adds where it came from)."""
    source = generator_file(entry, weights)
    return {
        "format": CARD_FORMAT,
        "family": manifest.model.family,
        "model": manifest.model.model_dump(mode="json"),
        "data_shape": list(manifest.shape),
        "classes": list(manifest.classes) or [str(c) for c in range(manifest.num_classes)],
        "checkpoint": {"name": entry.name, "step": entry.step, "weights": "ema" if source == "generator_ema" else "raw",
                       "file": getattr(entry, source), "sha256": entry.sha256_of(source)},
        "sampling": {"mode": sampling, "normalisation": normalisation(generator, sampling, manifest)},
        "program": None if traced is None else {"file": PROGRAM_FILE, "traced": traced, "torch": torch.__version__,
                                                 "device": "cpu", "dtype": "float32", "batch": "dynamic, ≥ 1"},
        **({"no_program_reason": reason} if reason else {}),
        "weights": {"file": WEIGHTS_FILE, "keys": "the traced module's state dict: `generator.` + the network's keys"},
        "inputs": input_spec(generator),
        "output": output_spec(manifest),
        "load": load_lines(generator) if traced else [],
    }


def normalisation(generator: nn.Module, sampling: str, manifest: RunManifest) -> str:
    """How the exported sampler normalises, in words (`sampling` matters only to a G with batch-norm layers)."""
    if manifest.model.family != "gan":
        return "no batch norm: every sampling mode is the same"
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in generator.modules()):
        return (f"norm {manifest.model.norm!r}: no running statistics; a reference or virtual norm's fixed reference "
                "batch is stored in the weights, and every sample is independent of the others")
    return {
        "eval": "batch norm with the running statistics accumulated in training",
        "reference": "batch norm with the reference z's own batch statistics, computed once and baked into the running "
                     "statistics: every sample is independent of the others",
        "train": "batch norm with each call's own batch statistics (evaluation.sampling train): a sample depends on the "
                 "others drawn in the same call; the pipeline draws in chunks of up to 500, so the same batch gives "
                 "the same samples",
    }[sampling]


def input_spec(generator: nn.Module) -> dict[str, Any]:
    z_dim = z_dim_of(generator)
    spec = {"z": {"shape": ["N", z_dim], "dtype": "float32", "distribution": "standard normal N(0, I)"}}
    if getattr(generator, "conditional", False):
        spec["labels"] = {"shape": ["N"], "dtype": "int64", "range": [0, int(generator.num_classes) - 1],
                          "meaning": "the class of each z (see `classes`)"}
    return spec


def output_spec(manifest: RunManifest) -> dict[str, Any]:
    if manifest.is_points:
        return {"name": "points", "shape": ["N", manifest.shape[0]], "dtype": "float32",
                "range": "unbounded 2-D coordinates (the mixture's modes are where the data's are)"}
    return {"name": "images", "shape": ["N", *manifest.shape], "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0],
            "from_pipeline": "(clamp(G(z), -1, 1) + 1) / 2, G's tanh output as the gallery normalises it",
            "to_uint8": "round(x * 255): the gallery's pixels"}


def load_lines(generator: nn.Module) -> list[str]:
    """Four lines of plain torch that draw 16 samples (the mode is baked in: never call .eval()/.train() on it); each
    short enough for the asset page to show whole."""
    call = "program(z, torch.arange(16) % {n})".format(n=generator.num_classes) \
        if getattr(generator, "conditional", False) else "program(z)"
    return ["import torch",
            f"program = torch.export.load('{PROGRAM_FILE}').module()",
            f"z = torch.randn(16, {z_dim_of(generator)})",
            f"samples = {call}"]


def scores_for_card(scores: pd.DataFrame, checkpoint: str, metric: str, direction: str) -> dict[str, Any]:
    """The exported checkpoint's score row and the real floor's, as plain JSON (NaN → null), and what chose it."""
    def row(name: str) -> dict[str, Any]:
        found = scores[scores["name"] == name]
        if found.empty:
            return {}
        return {k: plain(v) for k, v in found.iloc[0].items()}

    return {"checkpoint": row(checkpoint), REAL_FLOOR: row(REAL_FLOOR), "best_metric": metric,
            "best_direction": direction}


def plain(value: Any) -> Any:
    if isinstance(value, str) or value is None:
        return value
    if pd.isna(value):
        return None
    return int(value) if float(value).is_integer() and not isinstance(value, float) else float(value)


def headline(card: dict[str, Any]) -> str:
    """One line: which checkpoint, and its best metric beside the real floor's when the card has scores."""
    checkpoint = card["checkpoint"]
    text = f"{card['family']} {checkpoint['name']} (step {checkpoint['step']}, {checkpoint['weights']} weights)"
    scores = card.get("scores") or {}
    metric = scores.get("best_metric")
    value, floor = (scores.get("checkpoint") or {}).get(metric), (scores.get(REAL_FLOOR) or {}).get(metric)
    if value is not None:
        text += f": {metric} {value:.4g}" + (f" vs real floor {floor:.4g}" if floor is not None else "")
    return text + ("" if card.get("program") else " (weights and card only, no program)")


# -- writing the folder atomically ------------------------------------------------------------------


def write_folder_atomically(out_dir: Path, fill: Callable[[Path], Any]) -> Any:
    """Run `fill(folder)` on a fresh temp folder beside `out_dir`, then rename it into place (the previous folder
    moved aside first and deleted after: a reader sees the old export or the new one). On any failure the temp
    folder is removed and `out_dir` is as it was. Returns what `fill` returned."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_folders(out_dir.parent)
    folder = temp_folder(out_dir)
    try:
        result = fill(folder)
        os.chmod(folder, 0o755)  # mkdtemp makes 0700
        crash_point("export_folder")
        swap_into_place(folder, out_dir)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # gone already when the swap succeeded
    return result


def temp_folder(out_dir: Path) -> Path:
    """A temp folder beside `out_dir`, named `.<name>.<pid>.<random>.tmp` like core/storage's temp files."""
    return Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.{os.getpid()}.", suffix=TEMP_SUFFIX))


def swap_into_place(folder: Path, out_dir: Path) -> None:
    """Rename `folder` to `out_dir`; an existing `out_dir` is moved aside first and restored if the rename fails."""
    aside = temp_folder(out_dir) if out_dir.exists() else None
    if aside is not None:
        os.replace(out_dir, aside)  # onto the empty temp folder: a directory rename, atomic
    try:
        os.replace(folder, out_dir)
    except BaseException:
        if aside is not None:
            os.replace(aside, out_dir)
        raise
    fd = os.open(out_dir.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def remove_stale_folders(directory: Path) -> list[Path]:
    """Delete the temp folders in `directory` whose writer process is gone (an export killed mid-way)."""
    removed = []
    for path in directory.glob(f".*{TEMP_SUFFIX}"):
        if path.is_dir() and abandoned(path.name):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
