"""The fixed reference batch (tutorial §4.3): real examples for D, a batch of z for G.

Drawn once with the experiment's seed and never replaced. The same z feed every gallery grid, so
progress across checkpoints is comparable image for image; the real examples are what D's reference
and virtual batch norm normalise with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch


@dataclass(frozen=True)
class ReferenceBatch:
    ids: np.ndarray  # (N,) ids of real train images, in the dataset table
    labels: np.ndarray  # (N,) their classes
    z: np.ndarray  # (N, z_dim) float32 prior samples for G

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, labels) as tensors: G's reference batch and the classes that go with it."""
        return torch.from_numpy(self.z), torch.from_numpy(self.labels)

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for array in (self.ids.astype("<i8"), self.labels.astype("<i8"), self.z.astype("<f4")):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def stratified_choice(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `size` examples spread over classes as evenly as the classes allow.

    Deal round-robin from each class's shuffled members: every class gets ⌊size/K⌋ or one more,
    and a class with too few members simply runs out.
    """
    if size > len(labels):
        raise ValueError(f"reference batch of {size} needs at least {size} training images, got {len(labels)}")
    queues = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    chosen: list[int] = []
    while len(chosen) < size:
        for queue in queues:
            if queue and len(chosen) < size:
                chosen.append(int(queue.pop()))
    return np.sort(np.asarray(chosen, dtype=np.int64))


def select_reference(train_ids: np.ndarray, train_labels: np.ndarray, size: int, z_dim: int, seed: int) -> ReferenceBatch:
    rng = np.random.default_rng(seed)
    picked = stratified_choice(train_labels, size, rng)
    z = torch.randn(size, z_dim, generator=torch.Generator().manual_seed(seed)).numpy()
    return ReferenceBatch(train_ids[picked], train_labels[picked], z)


def to_table(batch: ReferenceBatch) -> pa.Table:
    z_dim = batch.z.shape[1]
    z = pa.FixedSizeListArray.from_arrays(pa.array(batch.z.astype(np.float32).reshape(-1)), z_dim)
    return pa.table({"real_id": pa.array(batch.ids, pa.int64()),
                     "label": pa.array(batch.labels, pa.int16()), "z": z})


def from_table(table: pa.Table) -> ReferenceBatch:
    z = table.column("z").combine_chunks()
    z_dim = z.type.list_size
    flat = z.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return ReferenceBatch(table.column("real_id").to_numpy().astype(np.int64),
                          table.column("label").to_numpy().astype(np.int64), flat.reshape(len(z), z_dim))
