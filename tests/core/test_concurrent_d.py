"""A D step split across two threads (a crowded CPU) gives the serial step's result."""

import copy
import os

import pytest
import torch
from torch import nn

from gan_assets.core import threads, training_loop
from gan_assets.core.concurrent_d import ConcurrentRealPass, can_split
from gan_assets.core.config import parse_experiment
from gan_assets.core.networks import Discriminator, Generator, dcgan_init_
from gan_assets.core.training_loop import TrainingCallbacks, TrainingData, d_update, new_state, train

SIZE, CLASSES = 16, 4


def config_with(**training):
    return parse_experiment({"dataset": {"image_size": SIZE}, "model": {"z_dim": 8, "g_width": 4, "d_width": 4},
                             "training": {"steps": 4, "batch_size": 8, "checkpoint_every": 2, "log_every": 2,
                                          **training},
                             "reference_batch": {"size": 8}, "gallery": {"grid_size": 2}})


def data() -> TrainingData:
    images = torch.randint(0, 256, (64, 1, SIZE, SIZE), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return TrainingData(images, torch.arange(64) % CLASSES)


def state_for(config, labels="none", norm="batch", compute_dtype=None):
    torch.manual_seed(0)
    conditional = labels == "conditional"
    g = Generator(8, 4, 1, SIZE, norm, num_classes=CLASSES if conditional else 0, label_dim=4 if conditional else 0)
    d = Discriminator(4, 1, SIZE, norm, num_classes=CLASSES, conditional=conditional,
                      auxiliary_classifier=labels == "auxiliary")
    dcgan_init_(g), dcgan_init_(d)
    return new_state(g, d, config.training, seed=0, device=torch.device("cpu"), num_classes=CLASSES,
                     compute_dtype=compute_dtype)


def d_buffers(state) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in state.discriminator.named_buffers() if b is not None}


@pytest.mark.parametrize("labels", ["none", "conditional", "auxiliary"])
def test_split_d_steps_match_serial_ones(labels):
    """Three D updates each way: same losses, D(x), weights and batch-norm running statistics."""
    config = config_with(label_smoothing=0.1)
    serial, split = state_for(config, labels), state_for(config, labels)
    concurrent = ConcurrentRealPass(split.discriminator)
    for _ in range(3):
        loss_a, d_x_a, _ = d_update(serial, data(), config.training)
        loss_b, d_x_b, _ = d_update(split, data(), config.training, split=concurrent)
        torch.testing.assert_close(loss_b, loss_a)
        torch.testing.assert_close(d_x_b, d_x_a)
    for a, b in zip(serial.discriminator.parameters(), split.discriminator.parameters()):
        torch.testing.assert_close(b, a)
    buffers_a, buffers_b = d_buffers(serial), d_buffers(split)
    assert buffers_a.keys() == buffers_b.keys() and any("running_mean" in k for k in buffers_a)
    for name in buffers_a:
        torch.testing.assert_close(buffers_b[name], buffers_a[name], msg=name)
    assert int(buffers_b["body.3.num_batches_tracked"]) == 6  # two batches (real, fake) per D update


def test_the_twin_shares_ds_parameters_and_keeps_its_own_statistics():
    d = Discriminator(4, 1, SIZE, "batch")
    concurrent = ConcurrentRealPass(d)
    assert all(a is b for a, b in zip(concurrent.twin.parameters(), d.parameters()))
    assert all(a is not b for a, b in zip(concurrent.twin.buffers(), d.buffers()))


def test_only_a_d_whose_forward_moves_batch_norm_statistics_alone_is_split():
    assert can_split(Discriminator(4, 1, SIZE, "batch"))
    assert can_split(Discriminator(4, 1, SIZE, "none"))
    referenced = Discriminator(4, 1, SIZE, "virtual")
    referenced.set_reference(torch.zeros(8, 1, SIZE, SIZE))
    assert can_split(referenced)  # the reference batch is fixed once chosen
    spectral = Discriminator(4, 1, SIZE, "none")
    nn.utils.spectral_norm(spectral.body[0])  # its power iteration writes vectors in every forward
    assert not can_split(spectral)
    with pytest.raises(ValueError, match="cannot be split"):
        ConcurrentRealPass(spectral)
    hooked = Discriminator(4, 1, SIZE, "batch")
    hooked.body[0].register_forward_hook(lambda *args: None)
    assert not can_split(hooked)


def crowded_machine(monkeypatch, crowded: bool, made: list):
    monkeypatch.setenv(threads.THREADS_VARIABLE, "auto")
    monkeypatch.setattr(threads, "follow_load", lambda: (1, crowded))
    monkeypatch.setattr(threads, "shared_per_thread", lambda: True)  # the neighbours are this session's
    monkeypatch.setattr(training_loop, "ConcurrentRealPass", lambda d: made.append(ConcurrentRealPass(d)) or made[-1])


@pytest.mark.parametrize("update, splits", [("alternating", True), ("simultaneous", False)])
def test_training_splits_d_steps_only_while_the_cpus_are_crowded(monkeypatch, update, splits):
    config = config_with(update=update, d_steps=2)
    quiet, crowded = state_for(config, compute_dtype=torch.bfloat16), state_for(config, compute_dtype=torch.bfloat16)
    made: list[ConcurrentRealPass] = []
    crowded_machine(monkeypatch, False, made)
    report_quiet = train(quiet, data(), config.training, TrainingCallbacks())
    assert made == []
    crowded_machine(monkeypatch, True, made)
    report_crowded = train(crowded, data(), config.training, TrainingCallbacks())
    assert len(made) == splits  # one twin for the whole run, and none for simultaneous updates
    for a, b in zip(report_quiet.history, report_crowded.history):
        assert b == pytest.approx(a, rel=2e-2, abs=1e-3)  # bf16 convs: the same kernels, summed in another order
    for a, b in zip(quiet.discriminator.parameters(), crowded.discriminator.parameters()):
        torch.testing.assert_close(b, a, rtol=2e-2, atol=2e-3)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_side_thread_of_its_own():
    d = Discriminator(4, 1, SIZE, "batch")
    x = torch.zeros(8, 1, SIZE, SIZE)
    assert ConcurrentRealPass(d).submit(lambda twin: twin(x).shape).result(timeout=30) == (8,)
    pid = os.fork()
    if pid == 0:  # the child: its inherited pool has no live thread, so a shared one would hang here
        code = 1
        try:
            code = 0 if ConcurrentRealPass(d).submit(lambda twin: twin(x).shape).result(timeout=10) == (8,) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
