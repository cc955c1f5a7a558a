"""Data-parallel training over several processes started by torchrun: gloo on CPU, NCCL on GPU.

`training.batch_size` is the global batch B; with W ranks each trains on B/W rows of it.

Sampling: every rank holds the same RNG stream (same seed, or restored from the same checkpoint) and draws the
whole global batch (indices, z, fake labels), then keeps its own rows (`GanState.rows`). So the examples a run
sees do not depend on the world size, and a checkpoint, which rank 0 writes with the shared stream's state,
resumes exactly on any number of ranks. Drawing B indices and B x z_dim normals on every rank is nothing beside
the forward and backward passes of B/W examples.

Gradients: each rank's loss is a mean over its B/W rows; before each optimiser step the gradients of that
optimiser's parameters are summed over the ranks (one flat all-reduce per player and step) and divided by W,
which is the gradient of the mean over the global batch. The hook sits on the optimisers
(`register_step_pre_hook`), so the training loop is the same code for one process or many. torch's
DistributedDataParallel wrapper is not used: the loop calls the players' `features`/`logits` and
`torch.autograd.grad`, which DDP's forward and backward hooks do not see.

Batch norm (`model.norm: batch`) is per rank: each rank normalises its own B/W rows, the tutorial's per-minibatch
statistics (§3.3) with a minibatch of B/W. SyncBatchNorm would make every norm layer of every forward a
collective (a dozen latency-bound all-reduces per step, the cost that dominates small GANs) and couple D's real
and fake passes across ranks; per-rank BN is also what DDP does by default. Its running statistics (used when
sampling in eval mode) are averaged over the ranks at each checkpoint, so the file rank 0 writes stands for all.
Reference and virtual BN take their statistics from the fixed reference batch, which every rank puts in front of
its rows through the same weights: the same statistics on every rank. With them, or no norm, W ranks compute
the updates of one process up to float rounding (tests/core/training/test_distributed.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch import nn

from gan_assets.core.runtime.device import resolve_device
from gan_assets.core.training.loop import GanState, TrainingCallbacks


def shard_rows(batch_size: int, rank: int, world_size: int) -> slice:
    """Rank `rank`'s rows of a global batch of `batch_size`; a batch that does not split evenly is an error."""
    if batch_size % world_size:
        raise ValueError(f"training.batch_size {batch_size} does not split evenly over {world_size} ranks: "
                         f"use a multiple of {world_size} (it is the global batch; each rank trains on "
                         f"batch_size / ranks rows)")
    rows = batch_size // world_size
    return slice(rank * rows, (rank + 1) * rows)


def rank_device(name: str, local_rank: int) -> torch.device:
    """The deployment's device (auto, cpu, cuda, cuda:N) for one rank: any CUDA choice means this node's GPU
    number LOCAL_RANK, one GPU per rank."""
    device = resolve_device(name)
    if device.type != "cuda":
        return device
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"rank {local_rank} has no GPU of its own: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s); start at most that many ranks per node (GAN_TRAIN_NPROC, nproc_per_node)")
    return torch.device("cuda", local_rank)


class DataParallel:
    """This process's place among torchrun's ranks, and the collectives training needs."""

    def __init__(self, rank: int, world_size: int, local_rank: int) -> None:
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device = torch.device("cpu")
        self.state: GanState | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> DataParallel | None:
        """The ranks torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); None for a single process."""
        world_size = int(environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return None
        rank = int(environ["RANK"])
        return cls(rank, world_size, int(environ.get("LOCAL_RANK", rank)))

    @property
    def is_leader(self) -> bool:
        """Rank 0 alone writes checkpoints, the manifest and the history, and reports to Dagster."""
        return self.rank == 0

    def start(self, device: torch.device) -> None:
        """Join the process group (torchrun's rendezvous in MASTER_ADDR/MASTER_PORT): NCCL on a GPU, else gloo."""
        self.device = device
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if dist.is_initialized():
            return
        # torchrun's workers share the agent's TCP store across restarts (--max-restarts) with no per-attempt prefix:
        # a restarted group read the dead attempt's keys and hung in gloo's connect. Each attempt gets its own keys.
        store, _, _ = next(dist.rendezvous("env://"))
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=dist.PrefixStore(
            f"gan_assets/attempt_{attempt}", store), rank=self.rank, world_size=self.world_size)

    def stop(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def attach(self, state: GanState, batch_size: int, callbacks: TrainingCallbacks) -> TrainingCallbacks:
        """Make `state` train on this rank's shard with averaged gradients; return `callbacks` made collective:
        the logged statistics are the global batch's, and only rank 0 writes checkpoints."""
        state.rows = shard_rows(batch_size, self.rank, self.world_size)
        for optimizer in (state.opt_g, state.opt_d):
            optimizer.register_step_pre_hook(self._average_gradients)
        self.state = state

        def progress(step: int, stats: dict[str, float]) -> None:
            callbacks.progress(step, self.mean_stats(stats))

        def checkpoint(s: GanState) -> None:
            self.average_buffers(s.generator, s.discriminator)
            if self.is_leader:
                callbacks.checkpoint(s)

        # a heartbeat is rank 0's own window so far (no collective: ranks beat at different moments)
        return TrainingCallbacks(progress=progress, checkpoint=checkpoint, abort=callbacks.abort,
                                 heartbeat=callbacks.heartbeat if self.is_leader else None,
                                 heartbeat_seconds=callbacks.heartbeat_seconds)

    def _average_gradients(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective per step, not one per tensor
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def mean_stats(self, stats: dict[str, float]) -> dict[str, float]:
        """Each logged statistic averaged over the ranks (every rank logs at the same steps)."""
        names = [name for name in stats if name != "step"]
        values = torch.tensor([stats[name] for name in names], dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        return {"step": stats["step"], **dict(zip(names, (values / self.world_size).tolist()))}

    def average_buffers(self, *modules: nn.Module) -> None:
        """Per-rank batch-norm running statistics replaced by their mean over the ranks."""
        for module in modules:
            for buffer in module.buffers():
                if buffer.is_floating_point():
                    dist.all_reduce(buffer)
                    buffer /= self.world_size

    def replicas_identical(self) -> bool:
        """Whether every rank ends with rank 0's weights and buffers, bit for bit (collective)."""
        state = self._attached()
        flat = _flat(state.generator, state.discriminator)
        leader = flat.clone()
        dist.broadcast(leader, 0)
        same = torch.tensor([float(torch.equal(flat, leader))], device=self.device)
        dist.all_reduce(same, op=dist.ReduceOp.MIN)
        return bool(same.item())

    def weights_digest(self) -> str:
        """sha256 of this rank's weights and buffers, to compare ranks from outside."""
        state = self._attached()
        return hashlib.sha256(_flat(state.generator, state.discriminator).cpu().numpy().tobytes()).hexdigest()

    def _attached(self) -> GanState:
        if self.state is None:
            raise RuntimeError("DataParallel.attach(state, …) was not called: no training state to compare")
        return self.state


def _flat(*modules: nn.Module) -> torch.Tensor:
    tensors = [t.detach().reshape(-1).double() for m in modules for t in [*m.parameters(), *m.buffers()]]
    return torch.cat(tensors)
