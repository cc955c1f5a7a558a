"""Batch, reference and virtual batch normalisation (tutorial section 4.3, Salimans et al. 2016).

Plain batch norm makes every example of a minibatch depend on the others: the tutorial's figure
shows one generated batch all orange and the next all green. Reference BN normalises with the
statistics of a fixed reference batch; virtual BN normalises each example with the statistics of
the union of the reference batch and that example alone.

How the networks feed the reference batch: every norm layer needs the reference batch's features
*at that layer*, computed with the current parameters. Rather than caching them (stale after
every optimiser step, and a second code path), the network runs the fixed reference batch
through itself together with the minibatch, so each layer receives
``torch.cat([reference_rows, minibatch_rows])``. Convolutions and activations act row by row,
so the concatenation changes nothing for them, and gradients flow through the reference
statistics exactly as in Salimans' code. Each norm module carries an integer ``n_ref`` (the
number of leading reference rows, 0 when none are present) that the network sets with
``set_reference_rows`` before each forward.

Consequences the tests check:
- with ``reference`` or ``virtual`` an example's output never depends on its minibatch
  companions (or their order); with ``batch`` in train mode it does;
- the reference batch is never replaced: it is whatever rows the caller puts first, and
  ``reference``/``virtual`` keep no running statistics, so eval mode behaves like train mode.

Under bf16 autocast the reference and virtual statistics and the normalisation are computed in fp32 and the
result returned in the input's dtype. Autocast would otherwise decide: CUDA's promotes `sum`, `pow` and `rsqrt`
to fp32 and CPU's does not, so the same network would normalise differently on the two devices.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_assets.core.config import NORM_KINDS

EPS = 1e-5  # torch's BatchNorm default, so the three kinds differ only in their statistics


def uses_reference(kind: str) -> bool:
    """Whether layers of this kind need the reference batch concatenated in front of the input."""
    _check_kind(kind)
    return kind in ("reference", "virtual")


def make_norm(kind: str, num_features: int) -> nn.Module:
    """A norm layer of `kind` over `num_features` channels, for (N, C) or (N, C, H, W) input."""
    _check_kind(kind)
    if kind == "batch":
        return BatchNorm(num_features, eps=EPS)
    if kind == "reference":
        return ReferenceBatchNorm(num_features)
    if kind == "virtual":
        return VirtualBatchNorm(num_features)
    return NoNorm()


def set_reference_rows(module: nn.Module, n_ref: int) -> None:
    """Set ``n_ref`` (leading reference rows of the input) on every norm layer inside `module`."""
    if isinstance(n_ref, bool) or not isinstance(n_ref, int) or n_ref < 0:
        raise ValueError(f"n_ref must be a non-negative int, got {n_ref!r}")
    for sub in module.modules():
        if isinstance(sub, _NORM_TYPES):
            sub.n_ref = n_ref


def _check_kind(kind: str) -> None:
    if kind not in NORM_KINDS:
        raise ValueError(f"unknown norm kind {kind!r}; expected one of {NORM_KINDS}")


class BatchNorm(nn.BatchNorm2d):
    """Plain batch norm with running statistics, for 2-D or 4-D input.

    ``n_ref`` exists only so every norm kind has the same interface; the network never puts
    reference rows in front of the input for this kind, so it is ignored.
    """

    def __init__(self, num_features: int, eps: float = EPS, momentum: float = 0.1) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.n_ref = 0

    def _check_input_dim(self, input: Tensor) -> None:
        # F.batch_norm reduces over every dim but 1, so (N, C) gives BatchNorm1d's result.
        if input.dim() not in (2, 4):
            raise ValueError(f"expected 2D or 4D input (got {input.dim()}D input)")


class NoNorm(nn.Identity):
    """The identity, with the ``n_ref`` attribute every norm layer has."""

    def __init__(self) -> None:
        super().__init__()
        self.n_ref = 0


class _ReferenceStatsNorm(nn.Module):
    """Shared parts of reference and virtual BN: affine parameters, input checks, normalising."""

    def __init__(self, num_features: int, eps: float = EPS) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.n_ref = 0
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, n_ref={self.n_ref}"

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Check the input and split it into (reference rows, minibatch rows)."""
        name = type(self).__name__
        if x.dim() not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(
                f"{name} expects (N, {self.num_features}) or (N, {self.num_features}, H, W) "
                f"input, got shape {tuple(x.shape)}"
            )
        if self.n_ref <= 0:
            raise ValueError(
                f"{name} needs the reference batch as the leading rows of its input, but "
                f"n_ref={self.n_ref}; call set_reference_rows(model, n_ref) before forward"
            )
        if self.n_ref > x.shape[0]:
            raise ValueError(f"{name}: n_ref={self.n_ref} exceeds the {x.shape[0]} input rows")
        return x[: self.n_ref], x[self.n_ref :]

    def _normalize(self, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        """Affine-normalise `x` with statistics broadcastable to it, in fp32."""
        shape = _channel_shape(x)
        scale = self.weight.float().view(shape) * torch.rsqrt(var + self.eps)
        return (x.float() - mean) * scale + self.bias.float().view(shape)


class ReferenceBatchNorm(_ReferenceStatsNorm):
    """Normalise every row with the mean and biased variance of the reference rows alone."""

    def forward(self, x: Tensor) -> Tensor:
        ref, _ = self._split(x)
        mean, var = _moments(ref)
        return self._normalize(x, mean, var).to(x.dtype)


class VirtualBatchNorm(_ReferenceStatsNorm):
    """Normalise each example with the statistics of the reference batch plus that example.

    The example counts as one more member of a batch of N + 1 (N = n_ref): its weight is
    1/(N+1), the reference batch's N/(N+1). Reference rows use the reference statistics.
    """

    def forward(self, x: Tensor) -> Tensor:
        ref, mini = self._split(x)
        ref_mean, ref_var = _moments(ref)
        mean, var = self._union_moments(mini.float(), ref_mean, ref_var)
        ref_out = self._normalize(ref, ref_mean, ref_var)
        return torch.cat([ref_out, self._normalize(mini, mean, var)]).to(x.dtype)

    def _union_moments(
        self, mini: Tensor, ref_mean: Tensor, ref_var: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Per-example (M, C, 1, ...) mean and variance of {reference batch} U {example}."""
        new = 1.0 / (self.n_ref + 1.0)
        old = 1.0 - new
        spatial = tuple(range(2, mini.dim()))  # empty for (N, C): the example is its own mean
        if spatial:
            ex_var, ex_mean = torch.var_mean(mini, dim=spatial, correction=0, keepdim=True)
        else:
            ex_var, ex_mean = torch.zeros_like(mini), mini
        mean = old * ref_mean + new * ex_mean
        # Equal to E[x^2] - mean^2 with both second moments mixed old/new (Salimans' formula),
        # written as within- plus between-group variance so float32 cannot cancel to var < 0.
        var = old * (ref_var + (ref_mean - mean) ** 2) + new * (ex_var + (ex_mean - mean) ** 2)
        return mean, var


_NORM_TYPES = (BatchNorm, NoNorm, ReferenceBatchNorm, VirtualBatchNorm)


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    """(1, C, 1, ...) so per-channel vectors broadcast against `x`."""
    return (1, x.shape[1]) + (1,) * (x.dim() - 2)


def _moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance over batch and spatial dims in fp32, kept broadcastable."""
    dims = (0,) + tuple(range(2, x.dim()))
    var, mean = torch.var_mean(x.float(), dim=dims, correction=0, keepdim=True)
    return mean, var
