"""The likelihood families' losses against closed forms: the VAE's KL and discretised likelihood and its bound, the
PixelCNN's masks and normalisation, Real NVP's change of variables (log-det, inverse, a density that integrates
to 1), and the windowed FVBN sampler equal to full passes."""

import math

import pytest
import torch

from gan_assets.core.models import fvbn, real_nvp, vae


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


# -- VAE ---------------------------------------------------------------------------------------------------
def test_gaussian_kl_is_the_closed_form_and_its_monte_carlo_estimate():
    mean, log_var = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    torch.testing.assert_close(vae.gaussian_kl(mean, log_var), torch.distributions.kl_divergence(q, p).sum(dim=1))
    z = q.sample((200_000,))
    monte_carlo = (q.log_prob(z) - p.log_prob(z)).sum(dim=2).mean(dim=0)
    torch.testing.assert_close(vae.gaussian_kl(mean, log_var), monte_carlo, rtol=0, atol=0.03)


@pytest.mark.parametrize("mean, log_scale", [(0.0, -3.0), (0.7, -1.0), (-0.99, -6.0), (2.5, 0.5), (0.3, -9.0)])
def test_discretised_logistic_sums_to_one_over_the_256_levels(mean, log_scale):
    levels = torch.arange(256, dtype=torch.uint8)
    log_p = vae.discretised_logistic_log_prob(levels, torch.full((256,), mean), torch.full((256,), log_scale))
    assert float(log_p.double().exp().sum()) == pytest.approx(1.0, abs=2e-5)


def test_discretised_logistic_mid_level_is_the_cdf_difference():
    x, mean, log_scale = torch.tensor([100], dtype=torch.uint8), torch.tensor([-0.2]), torch.tensor([-2.0])
    centre, s = 100 / 127.5 - 1.0, math.exp(-2.0)
    expected = 1 / (1 + math.exp(-(centre + 1 / 255 + 0.2) / s)) - 1 / (1 + math.exp(-(centre - 1 / 255 + 0.2) / s))
    assert float(vae.discretised_logistic_log_prob(x, mean, log_scale).exp()) == pytest.approx(expected, rel=1e-4)


def test_the_elbo_is_the_log_likelihood_less_the_posterior_kl():
    # A one-dimensional code, so p(x) = ∫ p(x|z) N(z) dz and the posterior p(z|x) are exact on a grid; the identity
    # log p(x) − ELBO = KL(q(z|x) ‖ p(z|x)) ≥ 0 then checks the reconstruction and KL terms together.
    model = vae.ConvVAE(channels=1, image_size=8, latent_dim=1, width=4).double()
    for p in [*model.from_code.parameters(), *model.decoder.parameters()]:
        p.data.mul_(3)  # a decoder whose output depends visibly on z
    image = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8)
    grid = torch.linspace(-10, 10, 20001, dtype=torch.float64)[:, None]
    step = float(grid[1] - grid[0])
    with torch.no_grad():
        mean, log_scale = model.decode(grid)
        log_joint = (vae.discretised_logistic_log_prob(image.expand(len(grid), -1, -1, -1), mean, log_scale)
                     .flatten(1).sum(1) - 0.5 * grid[:, 0] ** 2 - 0.5 * math.log(2 * math.pi))
        log_px = torch.logsumexp(log_joint, 0) + math.log(step)
        q_mean, q_log_var = model.encode(image)
        q = torch.distributions.Normal(q_mean[0, 0], (0.5 * q_log_var[0, 0]).exp())
        log_q = q.log_prob(grid[:, 0])
        posterior_kl = float((log_q.exp() * (log_q - (log_joint - log_px))).sum() * step)
        # the reparameterisation's noise at evenly spaced quantiles: E_q by quadrature, not by chance
        noise = torch.special.ndtri((torch.arange(20000, dtype=torch.float64) + 0.5) / 20000)[:, None]
        reconstruction, kl = vae.negative_elbo(model, image.expand(len(noise), -1, -1, -1), noise)
    elbo = float(-(reconstruction + kl).mean())
    assert posterior_kl > 0.01 and elbo < float(log_px)
    assert float(log_px) - elbo == pytest.approx(posterior_kl, rel=1e-3, abs=1e-3)


# -- FVBN (PixelCNN) ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("colours", [1, 3])
def test_output_i_never_depends_on_inputs_at_or_after_i(colours):
    model = fvbn.PixelCNN(colours, 4, width=6, layers=2)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.bias.data.fill_(1.0)  # every ReLU on, so every path the masks allow shows in the gradient
    x = torch.rand(8, colours, 4, 4, requires_grad=True)  # a batch: a ReLU that is off for one input is on for another
    logits = model.logits(model.features(x * 255))  # (8, C, 256, H, W)
    order = lambda c, r, k: (r * 4 + k) * colours + c  # raster order, then channels R → G → B  # noqa: E731
    for r in range(4):
        for k in range(4):
            for c in range(colours):
                (grad,) = torch.autograd.grad(logits[:, c, :, r, k].sum(), x, retain_graph=True)
                grad = grad.abs().sum(0)
                seen = {order(cc, rr, kk) for cc in range(colours) for rr in range(4) for kk in range(4)
                        if grad[cc, rr, kk] != 0}
                assert all(j < order(c, r, k) for j in seen), (c, r, k)
                if order(c, r, k) > 0:
                    assert seen, (c, r, k)  # it does see something before it
    first = torch.autograd.grad(logits[:, 0, :, 1, 1].sum(), x)[0].abs().sum(0)
    assert first[0, 1, 0] != 0 and first[0, 0, 1] != 0  # the pixel to the left and the one above


def test_pixelcnn_probabilities_of_every_image_sum_to_one():
    model = fvbn.PixelCNN(1, 2, width=4, layers=1)
    first, second = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    images = torch.stack([first.flatten(), second.flatten()], dim=1).view(-1, 1, 1, 2).to(torch.uint8)
    with torch.no_grad():
        total = torch.logsumexp(fvbn.log_prob(model, images).double(), 0)
    assert float(total) == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("colours", [1, 3])
def test_windowed_sampling_equals_full_passes(colours):
    model = fvbn.PixelCNN(colours, 6, width=6, layers=2)
    z = torch.randn(5, colours * 36)
    windowed, full = fvbn.sample(model, z), fvbn.sample_full_passes(model, z)
    torch.testing.assert_close(windowed, full, rtol=0, atol=0)
    assert windowed.unique().numel() > 10  # real draws, not one level everywhere


def test_fvbn_bits_per_dim_is_its_exact_negative_log_likelihood():
    model = fvbn.PixelCNN(1, 4, width=4, layers=1)
    images = torch.randint(0, 256, (3, 1, 4, 4), dtype=torch.uint8)
    logits = model(images).log_softmax(dim=2)
    by_hand = -logits.gather(2, images.long()[:, :, None]).sum(dim=(1, 2, 3, 4)) / (16 * math.log(2))
    torch.testing.assert_close(fvbn.bits_per_dim(model, images, torch.Generator()), by_hand.detach())


# -- Real NVP ----------------------------------------------------------------------------------------------
def randomised(module):
    for p in module.parameters():
        p.data.normal_(0, 0.3)  # the last layers start at zero (identity): make every coupling do something
    return module.double()


@pytest.mark.parametrize("mask", [real_nvp.checkerboard(4, 4, 0), real_nvp.checkerboard(4, 4, 1),
                                  real_nvp.channel_mask(4, 1)])
def test_coupling_log_det_is_the_log_det_of_its_jacobian(mask):
    channels = mask.shape[1] if mask.shape[1] > 1 else 2
    coupling = randomised(real_nvp.AffineCoupling(mask.double(), channels, width=5, blocks=1))
    x = torch.randn(1, channels, 4, 4, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: coupling(v.view_as(x))[0].flatten(), x.flatten())
    torch.testing.assert_close(coupling(x)[1][0], torch.logdet(jacobian))


def test_real_nvp_change_of_variables_and_inverse():
    model = randomised(real_nvp.RealNVP(1, 4, width=5, blocks=1, couplings=2))
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    z, log_det = model.flow(x)
    for i in range(3):
        jacobian = torch.autograd.functional.jacobian(lambda v: model.flow(v.view(1, 1, 4, 4))[0].flatten(),
                                                      x[i].flatten())
        torch.testing.assert_close(log_det[i], torch.logdet(jacobian))
    torch.testing.assert_close(model.inverse(z), x)


def test_flow_density_integrates_to_one():
    couplings = [randomised(real_nvp.AffineCoupling(real_nvp.checkerboard(1, 2, k).double(), 1, 4, 1))
                 for k in (0, 1)]
    side = torch.linspace(-9, 9, 601, dtype=torch.float64)
    a, b = torch.meshgrid(side, side, indexing="ij")
    x = torch.stack([a.flatten(), b.flatten()], 1).view(-1, 1, 1, 2)
    log_det = torch.zeros(len(x), dtype=torch.float64)
    with torch.no_grad():
        for coupling in couplings:
            x, ld = coupling(x)
            log_det += ld
        density = (real_nvp.standard_normal_log_prob(x) + log_det).exp()
    step = float(side[1] - side[0])
    assert float(density.sum()) * step * step == pytest.approx(1.0, abs=2e-3)


def test_dequantisation_log_det_is_the_derivative_of_the_logit_transform():
    images = torch.tensor([[[[0, 17], [128, 255]]]], dtype=torch.uint8)
    noise = torch.tensor([[[[0.5, 0.1], [0.9, 0.99]]]], dtype=torch.float64)
    x = (images.double() + noise).requires_grad_()
    p = real_nvp.ALPHA + (1 - 2 * real_nvp.ALPHA) * x / 256
    y = torch.log(p) - torch.log1p(-p)
    (derivative,) = torch.autograd.grad(y.sum(), x)  # diagonal Jacobian
    _, log_det = real_nvp.to_logit_space(images, noise.float())
    assert float(log_det[0]) == pytest.approx(float(derivative.log().sum()), rel=1e-5)


def test_real_nvp_samples_are_the_inverse_of_its_latent():
    model = randomised(real_nvp.RealNVP(1, 4, width=5, blocks=1, couplings=2)).float()
    images = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    y, _ = real_nvp.to_logit_space(images, torch.full(images.shape, 0.5))
    z, _ = model.flow(y)
    drawn = real_nvp.sample(model, z.flatten(1))
    torch.testing.assert_close(drawn, ((images.float() + 0.5) / 256) * 2 - 1, atol=1e-4, rtol=0)
