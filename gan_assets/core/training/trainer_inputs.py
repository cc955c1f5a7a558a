"""A run's inputs (`RunInputs`) as one .npz file, for a trainer in another process or pod to read.

The asset writes it into the run directory, which a subprocess shares and a Kubernetes pod mounts, and passes
its path to the trainer; arrays go in as they are, the few scalars as one JSON entry.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gan_assets.core.storage import atomic_path
from gan_assets.core.training.manifest import ModeCentres
from gan_assets.core.training.run import RunInputs

ARRAYS = ("images", "labels", "reference_images", "reference_labels", "reference_z")


def write_trainer_inputs(inputs: RunInputs, path: Path) -> Path:
    meta = {"num_classes": inputs.num_classes, "class_names": list(inputs.class_names),
            "modes": None if inputs.modes is None else {"centers": [list(c) for c in inputs.modes.centers],
                                                        "std": inputs.modes.std}}
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **{name: getattr(inputs, name) for name in ARRAYS})
    return Path(path)


def read_trainer_inputs(path: Path) -> RunInputs:
    if not Path(path).is_file():
        raise FileNotFoundError(f"trainer inputs {path} do not exist: the asset writes them before it launches the "
                                f"trainer, so the trainer must see the same run directory (a shared volume on a cluster)")
    with np.load(path, allow_pickle=False) as stored:
        meta = json.loads(str(stored["meta"]))
        modes = meta["modes"]
        return RunInputs(**{name: stored[name] for name in ARRAYS}, num_classes=int(meta["num_classes"]),
                         class_names=tuple(meta["class_names"]),
                         modes=ModeCentres(tuple(tuple(c) for c in modes["centers"]), modes["std"]) if modes else None)
