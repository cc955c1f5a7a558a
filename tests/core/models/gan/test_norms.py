"""Tests for gan_assets.core.models.gan.norms: the statistics of each kind and per-example independence."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from gan_assets.core.models.gan.norms import (
    NORM_KINDS,
    BatchNorm,
    ReferenceBatchNorm,
    VirtualBatchNorm,
    make_norm,
    set_reference_rows,
    uses_reference,
)

EPS = 1e-5
N_REF = 5
C = 3


def _randomize_affine(norm: nn.Module) -> nn.Module:
    """Non-trivial gamma and beta so the tests also check where the affine step is applied."""
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    return norm


def _by_hand(x: Tensor, stats_of: Tensor, norm: nn.Module) -> Tensor:
    """Normalise `x` with the mean and biased variance of `stats_of`, then apply gamma, beta."""
    dims = [0] + list(range(2, x.dim()))
    mean = stats_of.mean(dim=dims, keepdim=True)
    var = stats_of.var(dim=dims, unbiased=False, keepdim=True)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return (x - mean) / torch.sqrt(var + EPS) * norm.weight.view(shape) + norm.bias.view(shape)


def _batch(shape_tail: tuple[int, ...], n: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    # Offset and scale so the statistics are far from the identity's.
    return 2.0 + 3.0 * torch.randn((n, C) + shape_tail, generator=gen)


@pytest.mark.parametrize("tail", [(4, 4), ()], ids=["4d", "2d"])
def test_reference_bn_uses_reference_batch_statistics(tail: tuple[int, ...]) -> None:
    norm = _randomize_affine(make_norm("reference", C))
    ref, mini = _batch(tail, N_REF, 0), _batch(tail, 4, 1)
    set_reference_rows(norm, N_REF)
    out = norm(torch.cat([ref, mini]))
    assert_close(out, _by_hand(torch.cat([ref, mini]), ref, norm))


@pytest.mark.parametrize("tail", [(4, 4), ()], ids=["4d", "2d"])
def test_virtual_bn_uses_union_of_reference_and_one_example(tail: tuple[int, ...]) -> None:
    norm = _randomize_affine(make_norm("virtual", C))
    ref, mini = _batch(tail, N_REF, 0), _batch(tail, 4, 1)
    set_reference_rows(norm, N_REF)
    out = norm(torch.cat([ref, mini]))
    # Literal union: as one more member of an (N+1)-batch the example gets weight 1/(N+1).
    expected_mini = [
        _by_hand(mini[i : i + 1], torch.cat([ref, mini[i : i + 1]]), norm) for i in range(len(mini))
    ]
    assert_close(out[:N_REF], _by_hand(ref, ref, norm))
    assert_close(out[N_REF:], torch.cat(expected_mini))


def test_virtual_bn_matches_salimans_second_moment_formula() -> None:
    norm = make_norm("virtual", C)
    ref, mini = _batch((4, 4), N_REF, 0), _batch((4, 4), 2, 1)
    set_reference_rows(norm, N_REF)
    out = norm(torch.cat([ref, mini]))[N_REF:]
    new, old = 1 / (N_REF + 1), N_REF / (N_REF + 1)
    mean = old * ref.mean((0, 2, 3), keepdim=True) + new * mini.mean((2, 3), keepdim=True)
    second = old * (ref**2).mean((0, 2, 3), keepdim=True)
    second = second + new * (mini**2).mean((2, 3), keepdim=True)
    assert_close(out, (mini - mean) / torch.sqrt(second - mean**2 + EPS), rtol=1e-4, atol=1e-4)


def _single_norm(kind: str) -> nn.Module:
    return _randomize_affine(make_norm(kind, C))


def _small_net(kind: str) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(C, 4, 3, padding=1),
        make_norm(kind, 4),
        nn.LeakyReLU(0.2),
        nn.Conv2d(4, 2, 3, padding=1),
        make_norm(kind, 2),
    )


def _outputs_of_example_0(model: nn.Module, kind: str) -> list[Tensor]:
    """Example 0's output alone, and inside two minibatches with other companions and order."""
    # float64 so "identical" can mean 1e-10: float32 conv kernels may vary with the batch size.
    pool = _batch((5, 5), 6, 2).double()
    ref = _batch((5, 5), N_REF, 3).double()
    minibatches = {(0,): 0, (3, 0, 5): 1, (5, 4, 2, 1, 0): 4}  # rows -> position of example 0
    n_ref = N_REF if uses_reference(kind) else 0  # batch norm never receives reference rows
    set_reference_rows(model, n_ref)
    outs = []
    for rows, pos in minibatches.items():
        x = torch.cat([ref[:n_ref], pool[list(rows)]])
        outs.append(model(x)[n_ref + pos])
    return outs


@pytest.mark.parametrize("build", [_single_norm, _small_net], ids=["norm", "conv-net"])
@pytest.mark.parametrize("kind", ["reference", "virtual"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_reference_kinds_make_examples_independent(build, kind: str, train: bool) -> None:
    torch.manual_seed(0)
    model = build(kind).double().train(train)
    with torch.no_grad():
        alone, *in_batches = _outputs_of_example_0(model, kind)
    for out in in_batches:
        assert_close(out, alone, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("build", [_single_norm, _small_net], ids=["norm", "conv-net"])
def test_batch_norm_in_train_mode_couples_examples(build) -> None:
    torch.manual_seed(0)
    model = build("batch").double().train()
    with torch.no_grad():
        outs = _outputs_of_example_0(model, "batch")[1:]  # alone, a batch of one has var 0
    assert (outs[0] - outs[1]).abs().max() > 1e-2


def test_gradients_flow_through_reference_statistics() -> None:
    for kind in ("reference", "virtual"):
        norm = make_norm(kind, C)
        set_reference_rows(norm, N_REF)
        ref = _batch((4, 4), N_REF, 0).requires_grad_()
        mini = _batch((4, 4), 3, 1)
        out = norm(torch.cat([ref, mini]))[N_REF:]  # minibatch rows only: ref acts via statistics
        (out * torch.randn_like(out)).sum().backward()
        assert ref.grad is not None and ref.grad.abs().sum() > 0, kind
        assert torch.isfinite(ref.grad).all(), kind


@pytest.mark.parametrize("cls", [ReferenceBatchNorm, VirtualBatchNorm])
def test_missing_or_too_many_reference_rows_raise(cls) -> None:
    norm = cls(C)
    x = _batch((4, 4), 4, 0)
    with pytest.raises(ValueError, match="n_ref=0.*set_reference_rows"):
        norm(x)
    set_reference_rows(norm, 5)
    with pytest.raises(ValueError, match="exceeds"):
        norm(x)


def test_unknown_kind_names_the_allowed_kinds() -> None:
    with pytest.raises(ValueError, match="'layer'.*batch.*reference.*virtual.*none"):
        make_norm("layer", C)
    with pytest.raises(ValueError, match="unknown norm kind"):
        uses_reference("layer")
    with pytest.raises(ValueError, match="non-negative"):
        set_reference_rows(nn.Sequential(), -1)


def test_uses_reference() -> None:
    assert [uses_reference(k) for k in NORM_KINDS] == [False, True, True, False]


@pytest.mark.parametrize("kind", NORM_KINDS)
@pytest.mark.parametrize("tail", [(4, 4), ()], ids=["4d", "2d"])
def test_every_kind_keeps_shape_and_starts_as_identity_affine(
    kind: str, tail: tuple[int, ...]
) -> None:
    norm = make_norm(kind, C)
    assert norm.n_ref == 0
    for name, init in (("weight", 1.0), ("bias", 0.0)):
        if kind != "none":
            assert_close(getattr(norm, name), torch.full((C,), init))
    n_ref = N_REF if uses_reference(kind) else 0
    set_reference_rows(norm, n_ref)
    x = _batch(tail, n_ref + 4, 0)
    out = norm(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("tail", [(4, 4), ()], ids=["4d", "2d"])
def test_batch_kind_is_torch_batch_norm_in_train_and_eval(tail: tuple[int, ...]) -> None:
    ours = _randomize_affine(make_norm("batch", C))
    assert isinstance(ours, BatchNorm)
    theirs = nn.BatchNorm2d(C) if tail else nn.BatchNorm1d(C)
    theirs.load_state_dict(ours.state_dict())
    x = _batch(tail, 6, 0)
    assert_close(ours(x), theirs(x))
    assert_close(ours.running_mean, theirs.running_mean)
    assert_close(ours.eval()(x), theirs.eval()(x))


def test_none_is_identity() -> None:
    x = _batch((4, 4), 3, 0)
    assert make_norm("none", C)(x) is x


def test_set_reference_rows_reaches_every_norm() -> None:
    net = _small_net("virtual")
    set_reference_rows(net, 7)
    assert [m.n_ref for m in net if isinstance(m, VirtualBatchNorm)] == [7, 7]


def test_reference_kinds_keep_no_running_statistics() -> None:
    for kind in ("reference", "virtual"):
        norm = make_norm(kind, C)
        assert not list(norm.buffers()), kind
        set_reference_rows(norm, N_REF)
        x = _batch((4, 4), N_REF + 2, 0)
        assert_close(norm.train()(x), norm.eval()(x))
