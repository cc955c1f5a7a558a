"""One training run as a typed contract: what training produced, for every stage after it.

A `RunManifest` names the run directory, the model config and data shape that rebuild the networks,
the classes, the device, the loss-history table, every checkpoint (`CheckpointEntry`, with the sha256
of each of its files), the timing, and for 2-D mixtures the mode centres. Stages read exactly the
checkpoints a manifest names, never "the newest file", and every file they load is checked against
the hash recorded when it was written and refused when its path leaves the run directory.

On disk the manifest is `manifest.json` in the run directory, written atomically and last (whatever it
lists is complete). Paths inside it are relative to the run directory, and the directory itself is
never stored in it, so a moved or copied data directory stays readable. Manifests written before this
type (format 1: no `format` key) still load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from gan_assets.core.config import ModelConfig
from gan_assets.core.storage import StoredFileError, read_json, read_parquet, verify_sha256, write_json_atomic

MANIFEST_FILE = "manifest.json"
HISTORY_FILE = "history.parquet"
FORMAT = 2  # 1: the untyped dict of the first releases (generator hash only)
PLAYER_FILES = ("generator", "discriminator", "state")
RETRAIN_HINT = ("retrain from scratch to rebuild this run: `make run EXPERIMENT=<file> FRESH=1`, or in the UI the "
                "launchpad config `fresh_run: true` of gan_checkpoints")


class ManifestError(StoredFileError):
    """A manifest that cannot be trusted: unreadable, of an unknown format, or naming a file outside its run."""


def checkpoint_name(step: int) -> str:
    """The one spelling of a checkpoint's name: its files, its score row and its gallery image carry it."""
    return f"step_{step:06d}"


@dataclass(frozen=True, kw_only=True)
class CheckpointEntry:
    """One checkpoint's files (relative to the run directory) and the sha256 of each: a GAN's three; a likelihood
    family's model (under `generator`: the network that draws samples) and state, with no discriminator."""

    step: int
    generator: str
    discriminator: str | None = None
    state: str
    generator_sha256: str
    discriminator_sha256: str | None = None  # None in format-1 manifests, which hashed G alone
    state_sha256: str | None = None
    generator_ema: str | None = None  # G's moving average (training.ema_decay), when the run keeps one
    generator_ema_sha256: str | None = None

    @property
    def name(self) -> str:
        return checkpoint_name(self.step)

    @staticmethod
    def file_names(step: int) -> dict[str, str]:
        stem = checkpoint_name(step)
        return {"generator": f"{stem}.generator.safetensors", "discriminator": f"{stem}.discriminator.safetensors",
                "generator_ema": f"{stem}.generator_ema.safetensors", "state": f"{stem}.state.pt"}

    def to_dict(self) -> dict[str, Any]:
        """The entry as stored; a run without G_ema stores no ema keys (its manifest reads as before they existed)."""
        return {k: v for k, v in vars(self).items() if not (k.startswith("generator_ema") and v is None)}

    def sha256_of(self, player: str) -> str | None:
        return getattr(self, f"{player}_sha256")


@dataclass(frozen=True)
class RunTiming:
    steps: int
    seconds: float
    steps_per_second: float
    images_per_second: float  # real images D sees per second


@dataclass(frozen=True)
class ModeCentres:
    """Where a 2-D mixture's modes are (copied from the dataset table, the one place they are stored)."""

    centers: tuple[tuple[float, float], ...]
    std: float


@dataclass(frozen=True)
class RunManifest:
    run_dir: Path
    model: ModelConfig
    shape: tuple[int, ...]  # (C, H, W) images or (2,) points
    num_classes: int
    device: str
    checkpoints: tuple[CheckpointEntry, ...] = ()
    timing: RunTiming | None = None
    modes: ModeCentres | None = None
    history: str = HISTORY_FILE
    classes: tuple[str, ...] = field(default=())  # class names, when the dataset named them

    # -- reading -------------------------------------------------------------------------------
    @property
    def latest(self) -> CheckpointEntry:
        if not self.checkpoints:
            raise ManifestError(f"the run in {self.run_dir} has no checkpoint yet; {RETRAIN_HINT}")
        return self.checkpoints[-1]

    @property
    def is_points(self) -> bool:
        return len(self.shape) == 1

    def path(self, relative: str) -> Path:
        """`relative` inside the run directory; a path that leaves it (absolute, `..`) is refused."""
        parts = PurePosixPath(relative)
        if parts.is_absolute() or Path(relative).is_absolute() or ".." in parts.parts or not parts.parts:
            raise ManifestError(f"{self.run_dir / MANIFEST_FILE} names {relative!r}, outside its run directory: "
                                f"refusing to load it; {RETRAIN_HINT}")
        return self.run_dir / relative

    def verified_path(self, entry: CheckpointEntry, player: str) -> Path:
        """The file of `player` ("generator", "discriminator", "state") at `entry`, checked against its hash."""
        path = self.path(getattr(entry, player))
        verify_sha256(path, entry.sha256_of(player), RETRAIN_HINT)
        return path

    def history_frame(self) -> pd.DataFrame:
        return read_parquet(self.path(self.history)).to_pandas()

    # -- growing (frozen: each returns a new manifest) -----------------------------------------------
    def with_checkpoint(self, entry: CheckpointEntry) -> RunManifest:
        return replace(self, checkpoints=(*self.checkpoints, entry))

    def with_timing(self, timing: RunTiming) -> RunManifest:
        return replace(self, timing=timing)

    def moved_to(self, run_dir: Path) -> RunManifest:
        return replace(self, run_dir=Path(run_dir))

    # -- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "format": FORMAT, "model": self.model.model_dump(mode="json"), "shape": list(self.shape),
            "num_classes": self.num_classes, "classes": list(self.classes), "device": self.device,
            "history": self.history, "checkpoints": [entry.to_dict() for entry in self.checkpoints],
        }
        if self.timing is not None:
            payload["timing"] = vars(self.timing)
        if self.modes is not None:
            payload["modes"] = {"centers": [list(c) for c in self.modes.centers], "std": self.modes.std}
        return payload

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict[str, Any], run_dir: Path, origin: str | Path = "manifest") -> RunManifest:
        """Parse a manifest (format 1 or 2) found at `origin`; its files live in `run_dir`."""
        try:
            raw = json.loads(text) if isinstance(text, str) else dict(text)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{origin} is not valid JSON ({err}); {RETRAIN_HINT}") from None
        version = raw.get("format", 1)
        if version not in (1, FORMAT):
            raise ManifestError(f"{origin} has manifest format {version!r}; this code reads formats 1 and {FORMAT}: "
                                f"upgrade gan_assets or {RETRAIN_HINT}")
        try:
            return cls._from_dict(raw, Path(run_dir))
        except (KeyError, TypeError, ValueError) as err:
            raise ManifestError(f"{origin} is not a run manifest ({type(err).__name__}: {err}); {RETRAIN_HINT}") from None

    @classmethod
    def _from_dict(cls, raw: dict[str, Any], run_dir: Path) -> RunManifest:
        timing, modes = raw.get("timing"), raw.get("modes")
        return cls(
            run_dir=run_dir, model=ModelConfig.model_validate(raw["model"]),
            shape=tuple(int(s) for s in raw["shape"]), num_classes=int(raw["num_classes"]), device=str(raw["device"]),
            checkpoints=tuple(CheckpointEntry(**entry) for entry in raw["checkpoints"]),
            timing=RunTiming(**timing) if timing else None,
            modes=ModeCentres(tuple(tuple(float(v) for v in c) for c in modes["centers"]), float(modes["std"]))
            if modes else None,
            history=str(raw.get("history", HISTORY_FILE)), classes=tuple(raw.get("classes", ())),
        )

    # -- the file in the run directory ---------------------------------------------------------------
    def write(self) -> None:
        write_json_atomic(self.to_dict(), self.run_dir / MANIFEST_FILE)

    @classmethod
    def read(cls, run_dir: Path) -> RunManifest | None:
        """The manifest in `run_dir`, or None when the run has not written one yet."""
        path = Path(run_dir) / MANIFEST_FILE
        if not path.exists():
            return None
        try:
            return cls.from_json(read_json(path), run_dir, origin=path)
        except StoredFileError as err:
            raise ManifestError(f"{err}; {RETRAIN_HINT}") from None
