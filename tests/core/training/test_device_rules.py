"""What the CUDA path relies on, shown on the CPU: gradients in their weights' layout, one upload of the train split,
and norms and the projection term computed in fp32 whatever autocast would choose."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_assets.core.models.gan.norms import ReferenceBatchNorm, VirtualBatchNorm, set_reference_rows
from gan_assets.core.training.loop import STEP_FUNCTIONS, _set_grads, in_layout_of
from gan_assets.core.training.run import device_images
from tests.core.training.test_training import fake_data, fake_digits, tiny_config, tiny_state


class ContiguousUse(nn.Module):
    """A channels_last weight used through `.contiguous()`: autograd.grad hands back an NCHW gradient, the case a
    bf16 cuDNN convolution produces for a channels_last weight."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3, 3, 3).contiguous(memory_format=torch.channels_last))

    def forward(self, x):
        return F.conv2d(x, self.weight.contiguous())


def test_a_gradient_from_autograd_grad_takes_its_weights_layout():
    module = ContiguousUse()
    loss = module(torch.randn(2, 3, 5, 5)).square().sum()
    raw = torch.autograd.grad(loss, [module.weight], retain_graph=True)[0]
    assert raw.stride() != module.weight.stride()  # the defect: CUDA's fused Adam refuses this pair
    _set_grads(module, loss)
    assert module.weight.grad.stride() == module.weight.stride()
    torch.testing.assert_close(module.weight.grad, raw, rtol=0, atol=0)
    same = torch.randn(3, 3)
    assert in_layout_of(same, same) is same  # nothing copied when the layouts agree


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_after_each_step_every_gradient_has_its_parameters_strides(update, dtype):
    config = tiny_config(update=update)
    state = tiny_state(config)
    state.compute_dtype = dtype
    for player in (state.generator, state.discriminator):
        player.to(memory_format=torch.channels_last)
    STEP_FUNCTIONS[update](state, fake_data(), config.training)
    for player in (state.generator, state.discriminator):
        for name, param in player.named_parameters():
            assert param.grad is not None and param.grad.stride() == param.stride(), name


def test_the_train_split_is_uploaded_once_in_channels_last():
    images = fake_digits(8)
    on_device = device_images(images, torch.device("cpu"))
    assert on_device.is_contiguous(memory_format=torch.channels_last) and on_device.dtype == torch.uint8
    torch.testing.assert_close(on_device, torch.from_numpy(images), rtol=0, atol=0)


@pytest.mark.parametrize("norm", [ReferenceBatchNorm, VirtualBatchNorm])
def test_reference_and_virtual_statistics_are_fp32_under_bf16_autocast(norm):
    """CUDA's autocast runs `sum`/`pow`/`rsqrt` in fp32 and CPU's does not: the layer computes in fp32 itself, so a
    bf16 input gives the fp32 layer's output on that input, rounded once to bf16, on either device."""
    torch.manual_seed(0)
    layer = norm(6)
    nn.init.normal_(layer.weight, 1.0, 0.3), nn.init.normal_(layer.bias, 0.0, 0.3)
    set_reference_rows(layer, 8)
    x = (torch.randn(12, 6, 4, 4) * 3 + 5).bfloat16()  # offset: bf16 statistics would lose the spread
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = layer(x)
    exact = layer(x.float())
    assert fast.dtype == torch.bfloat16 and exact.dtype == torch.float32
    torch.testing.assert_close(fast.float(), exact.bfloat16().float(), rtol=0, atol=0)


def test_the_projection_term_is_summed_in_fp32_under_autocast():
    from gan_assets.core.models.gan.networks import Discriminator

    torch.manual_seed(0)
    d = Discriminator(4, 1, 16, "batch", num_classes=10, conditional=True)
    phi = torch.randn(6, d.embed.embedding_dim, 4, 4).bfloat16()
    y = torch.arange(6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = d.logits(phi, y)
    assert logits.dtype == torch.float32
    projection = (d.embed(y).float() * phi.float().flatten(2).sum(2)).sum(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        head = d.head(phi).flatten().float()
    torch.testing.assert_close(logits, head + projection)


def test_a_compiled_step_trains_like_the_eager_one(tmp_path, monkeypatch):
    """GAN_COMPILE compiles the players' forwards (reduce-overhead: CUDA graphs on a GPU) and leaves what a run
    computes alone. Inductor's code generation takes most of a minute on two cores, so the compiler runs with its
    eager backend here: what is checked is the plumbing (which methods, the step marks, checkpoints unchanged)."""
    from gan_assets.core.runtime.device import DeviceSettings
    from gan_assets.core.training import loop
    from tests.core.training.test_training import run

    real_compile, compiled = torch.compile, []

    def eager_backend(fn, mode=None):
        compiled.append((getattr(fn, "__name__", fn), mode))
        return real_compile(fn, backend="aot_eager")

    monkeypatch.setattr(loop.torch, "compile", eager_backend)
    monkeypatch.setenv("GAN_COMPILE", "reduce-overhead")
    graphed = run(tiny_config(), tmp_path / "graphed")
    assert compiled == [("forward", "reduce-overhead"), ("features", "reduce-overhead"), ("logits", "reduce-overhead")]
    monkeypatch.setenv("GAN_COMPILE", "off")
    eager = run(tiny_config(), tmp_path / "eager")
    torch.testing.assert_close(torch.tensor(graphed.history_frame()[["loss_d", "loss_g"]].to_numpy()),
                               torch.tensor(eager.history_frame()[["loss_d", "loss_g"]].to_numpy()), rtol=1e-4, atol=1e-5)
    assert DeviceSettings.from_env().compile == "off"
