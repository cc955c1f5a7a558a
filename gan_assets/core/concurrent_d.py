"""D's real-data half of a D step on a second thread, for a CPU that other processes keep busy.

When other processes' runnable threads fill every CPU, the kernel shares time per runnable thread: beside two
CPU-bound processes on two cores a one-thread training gets 2/3 of a core, and a two-thread one no more, since
torch's intra-op threads wait for each other at every op and one of them is always descheduled. A D step's real
and fake halves are independent until their gradients are summed (J(D) is a sum of two minibatch means), so in
that case the loop runs them on two threads, one intra-op thread each, joined once per D step: two runnable
threads of four get a whole core, and a descheduled thread holds its partner up once per step, not once per op.

The real half runs on a twin of D: its own modules and buffers, D's own parameter tensors, so both halves'
gradients accumulate in D's `.grad` (autograd locks each parameter's accumulator). Batch-norm running statistics
are then merged into what the serial order (real, then fake) gives. Only a D whose buffers are batch-norm running
statistics or the fixed reference batch is split; any other D (spectral norm's vectors, say) stays serial.

This pays only where the kernel shares a crowded CPU per thread: among the processes of one session (the Dagster
daemon's runs, `--busy`'s burners), or with autogroup scheduling off. With autogroup on, CPU-bound processes of
another session (another shell) get their session's share whatever our thread count, so a second thread only adds
waiting: measured beside a session per burner (`burner_session: separate`), 950-1,039 img/s split against 1,163
serial. So the loop splits only while most runnable neighbour threads are of this session
(`threads.shared_per_thread`, looked at every 2 s while crowded).
A trainer timing both ways as it ran was tried first and not kept: its trials underrated the split (a split window
right after a serial one ran slower than splitting throughout), and in three `--busy` runs it kept 0.43-0.45 of
the quiet rate where splitting whenever crowded kept 0.49-0.58.

Measured with `OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_canonical.py --busy` (the default
experiment's networks, two CPU-bound processes on two cores; README, "A busy machine"): beside burners of this
session 1,363-1,581 img/s split (twelve runs splitting whenever crowded) against 1,101-1,193 serial on one
thread (`--threads 1`); the split kept a median 0.52 of the quiet rate over ten runs of this policy. A quiet machine never splits: there the step's two intra-op
threads share every op, G's step included, where the split leaves G's step on one thread.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, TypeVar

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from gan_assets.core.networks import _WithReference

T = TypeVar("T")


def can_split(discriminator: nn.Module) -> bool:
    """Whether D's forward changes nothing but batch-norm running statistics (which `ConcurrentRealPass`
    merges), so its real half may run on a twin."""
    for module in discriminator.modules():
        if not list(module.buffers(recurse=False)) or isinstance(module, _WithReference):
            continue  # no buffers, or only the reference batch, which is fixed once chosen
        if not (isinstance(module, _BatchNorm) and isinstance(module.momentum, float)):
            return False
    return not _has_hooks(discriminator)


def _has_hooks(discriminator: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in discriminator.modules())


def _twin(discriminator: nn.Module) -> nn.Module:
    """A copy of D with its own modules and buffers but D's own parameter tensors."""
    twin = copy.deepcopy(discriminator)
    for twin_module, module in zip(twin.modules(), discriminator.modules()):
        for name, param in module._parameters.items():
            twin_module._parameters[name] = param
    return twin


_SIDE_THREAD: dict[int, ThreadPoolExecutor] = {}  # by process id: a forked child does not inherit the thread


def _side_thread() -> ThreadPoolExecutor:
    """The process's one side thread, made on first use and kept: a new thread's first D pass is slow (its
    allocator and kernel caches start cold), and a caller may train in many short `train` calls."""
    pid = os.getpid()
    if pid not in _SIDE_THREAD:
        _SIDE_THREAD.clear()
        _SIDE_THREAD[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="d-real-half")
    return _SIDE_THREAD[pid]


class ConcurrentRealPass:
    """Runs one function of a D twin on a second thread while the caller computes the fake half on D.

    Use: `future = split.submit(real_half)`; the fake half's forward and backward; `future.result()`; then
    `split.merge_statistics()` before the optimizer step."""

    def __init__(self, discriminator: nn.Module) -> None:
        if not can_split(discriminator):
            raise ValueError(f"{type(discriminator).__name__} changes state other than batch-norm statistics "
                             "in its forward; its D step cannot be split across threads")
        self.discriminator, self.twin = discriminator, _twin(discriminator)
        self.norms = [(twin, module) for twin, module in zip(self.twin.modules(), discriminator.modules())
                      if isinstance(module, _BatchNorm) and module.track_running_stats]
        self.before: list[tuple[torch.Tensor, torch.Tensor]] = []

    def submit(self, real_half: Callable[[nn.Module], T]) -> Future[T]:
        """Start `real_half(twin)` on the side thread, with the twin's buffers equal to D's now."""
        with torch.no_grad():
            for twin_buffer, buffer in zip(self.twin.buffers(), self.discriminator.buffers()):
                twin_buffer.copy_(buffer)
        self.before = [(norm.running_mean.clone(), norm.running_var.clone()) for _, norm in self.norms]
        self.twin.train(self.discriminator.training)
        return _side_thread().submit(real_half, self.twin)

    @torch.no_grad()
    def merge_statistics(self) -> None:
        """D's running statistics as if the real half had run first: with momentum m, the twin holds
        A = (1-m) r0 + m μ_real and D holds B = (1-m) r0 + m μ_fake; serially D would hold (1-m) A + m μ_fake,
        which is B + (1-m)(A - r0). In eval mode neither half moved them."""
        if not self.discriminator.training:
            return
        for (twin, norm), (mean0, var0) in zip(self.norms, self.before):
            keep = 1.0 - norm.momentum
            norm.running_mean.add_(twin.running_mean - mean0, alpha=keep)
            norm.running_var.add_(twin.running_var - var0, alpha=keep)
            norm.num_batches_tracked.add_(1)
