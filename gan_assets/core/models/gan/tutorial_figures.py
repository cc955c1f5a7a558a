"""Data and PNGs for two of the tutorial's figures, so their claims are computed, not quoted.

- Cost response (section 3.2.6, the tutorial's figure 16): each generator cost and its derivative
  as a function of D(G(z)). It shows why minimax saturates (flat where D rejects fakes, D -> 0),
  why non-saturating does not, and why maximum likelihood is dominated by the samples D finds
  most real (steep as D -> 1).
- Divergence direction (section 3.2.5, figure 14): a single Gaussian q fitted to a two-mode
  mixture p. Forward KL(p‖q) (maximum likelihood) spreads q over both modes; reverse KL(q‖p)
  locks onto one mode.

KL is computed by quadrature on a fixed grid in log space (logsumexp over mixture components),
so no density underflows into log(0) even far in the tails. Figures use matplotlib's Agg canvas
directly, never pyplot, so rendering touches no global backend state and needs no display.
"""

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from gan_assets.core.models.gan.losses import GENERATOR_LOSSES, cost_as_function_of_d

DIRECTIONS = ("forward", "reverse")
# Quadrature grid (lo, hi, points): spacing 0.005 resolves components of std 0.5 far better than
# any tolerance we check, and ±10 holds all mass of p and of every q the fit visits.
QUADRATURE_GRID = (-10.0, 10.0, 4001)


def cost_response_curves(num_points: int = 199) -> pd.DataFrame:
    """Columns ``d``, then ``{name}_cost`` and ``{name}_grad`` (dJ/dD) for each generator cost.

    d spans the open interval (0, 1) evenly, endpoints excluded: there the costs are infinite.
    """
    d = torch.linspace(0.0, 1.0, num_points + 2, dtype=torch.float64)[1:-1].requires_grad_(True)
    columns = {"d": d.detach().numpy()}
    for name in GENERATOR_LOSSES:
        cost = cost_as_function_of_d(name, d)
        # The cost is elementwise in d, so the gradient of the sum is each point's derivative.
        (grad,) = torch.autograd.grad(cost.sum(), d)
        columns[f"{name}_cost"] = cost.detach().numpy()
        columns[f"{name}_grad"] = grad.numpy()
    return pd.DataFrame(columns)


def _png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def render_cost_response_png(df: pd.DataFrame) -> bytes:
    """Two panels: J(G) vs D(G(z)) (the tutorial's figure 16), and dJ(G)/dD."""
    fig = Figure(figsize=(10, 4), dpi=100)
    cost_ax, grad_ax = fig.subplots(1, 2)
    for name in GENERATOR_LOSSES:
        cost_ax.plot(df["d"], df[f"{name}_cost"], label=name)
        grad_ax.plot(df["d"], df[f"{name}_grad"], label=name)
    cost_ax.set(xlabel="D(G(z))", ylabel="J(G)", title="Generator cost", ylim=(-20, 5))
    # symlog: the derivatives span 0.5 to 1e4 in size and are all negative. Every |dJ/dD| >= 0.5,
    # so with linthresh 0.1 no curve crosses the linear band and none shows a kink.
    grad_ax.set_yscale("symlog", linthresh=0.1)
    grad_ax.set(xlabel="D(G(z))", ylabel="dJ(G)/dD", title="Derivative w.r.t. D")
    for ax in (cost_ax, grad_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png_bytes(fig)


@dataclass(frozen=True)
class GaussianMixture1D:
    """p for the divergence figure; defaults are two well-separated, equally weighted modes."""

    means: tuple[float, ...] = (-2.0, 2.0)
    stds: tuple[float, ...] = (0.5, 0.5)
    weights: tuple[float, ...] = (0.5, 0.5)  # must sum to 1

    def log_density(self, x: Tensor) -> Tensor:
        means, stds, weights = (torch.tensor(v, dtype=x.dtype) for v in (self.means, self.stds, self.weights))
        per_component = _log_normal(x.unsqueeze(-1), means, stds) + torch.log(weights)
        return torch.logsumexp(per_component, dim=-1)


def _log_normal(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return -0.5 * ((x - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)


def _kl_by_quadrature(log_a: Tensor, log_b: Tensor, grid: Tensor) -> Tensor:
    """KL(a‖b) = ∫ a (log a - log b) dx, trapezoid rule, from log densities on the grid."""
    return torch.trapezoid(log_a.exp() * (log_a - log_b), grid)


def _divergence(direction: str, log_p: Tensor, log_q: Tensor, grid: Tensor) -> Tensor:
    if direction == "forward":
        return _kl_by_quadrature(log_p, log_q, grid)  # KL(p‖q): q must cover all of p
    return _kl_by_quadrature(log_q, log_p, grid)  # KL(q‖p): q must avoid where p is small


def fit_gaussian_to_mixture(
    direction: str,
    mixture: GaussianMixture1D = GaussianMixture1D(),
    init_mu: float = 1.0,  # off-centre: mu = 0 is a saddle of reverse KL for a symmetric p
    init_sigma: float = 1.0,
    steps: int = 500,
    lr: float = 0.05,
) -> dict[str, float]:
    """Fit q = N(mu, sigma²) to p by minimising KL(p‖q) ("forward") or KL(q‖p) ("reverse").

    Adam on (mu, log sigma): log keeps sigma positive. The learning rate decays to zero (cosine)
    because Adam's step size does not shrink with the gradient, so a constant rate keeps
    oscillating around the optimum. Returns mu, sigma and the final KL.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; allowed: {', '.join(DIRECTIONS)}")
    grid = torch.linspace(*QUADRATURE_GRID, dtype=torch.float64)
    log_p = mixture.log_density(grid)
    mu = torch.tensor(init_mu, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(math.log(init_sigma), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        kl = _divergence(direction, log_p, _log_normal(grid, mu, log_sigma.exp()), grid)
        opt.zero_grad()
        kl.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        kl = _divergence(direction, log_p, _log_normal(grid, mu, log_sigma.exp()), grid)
    return {"mu": mu.item(), "sigma": log_sigma.exp().item(), "kl": kl.item()}


_FIT_TITLES = {
    "forward": "argmin KL(p‖q): maximum likelihood",
    "reverse": "argmin KL(q‖p): reverse KL",
}


def render_divergence_fits_png(
    p_params: GaussianMixture1D, fits: Mapping[str, Mapping[str, float]]
) -> bytes:
    """One panel per fit (keyed by direction), each drawing p and the fitted q."""
    x = torch.linspace(-6.0, 6.0, 1201, dtype=torch.float64)
    p = p_params.log_density(x).exp()
    fig = Figure(figsize=(5 * len(fits), 4), dpi=100)
    axes = fig.subplots(1, len(fits), squeeze=False)[0]
    for ax, (direction, fit) in zip(axes, fits.items()):
        mu, sigma = torch.tensor(fit["mu"]), torch.tensor(fit["sigma"])
        q = _log_normal(x, mu, sigma).exp()
        ax.plot(x, p, label="p (data)")
        ax.plot(x, q, label=f"q = N({fit['mu']:.2f}, {fit['sigma']:.2f}²)")
        ax.set(xlabel="x", ylabel="density", title=_FIT_TITLES.get(direction, direction))
        ax.legend()
    fig.tight_layout()
    return _png_bytes(fig)
