"""The discretised likelihood (issue 22): Eq. 8/11's Gaussian integrated over 8-bit bins, against
probability's own rules, numerical integration and the continuous density."""

import math

import pytest
import torch
from torch import nn

from sigmavae.likelihoods import discretized_gaussian_log_prob, gaussian_log_prob
from sigmavae.metrics import bits_per_dim, iwae_log_likelihood

LEVELS = torch.arange(256, dtype=torch.float64).div(255)  # every 8-bit value, as as_float makes them


def one_pixel(mean: float, sigma2: float, levels=LEVELS) -> torch.Tensor:
    """log P of each level for one pixel with this mean and σ² (images of a single pixel)."""
    x = levels.view(-1, 1)
    return discretized_gaussian_log_prob(x, torch.full_like(x, mean), torch.tensor(math.log(sigma2)),
                                         levels=len(levels))


@pytest.mark.parametrize("mean", [-0.4, 0.0, 0.3, 127.5 / 255, 1.0, 1.7])
@pytest.mark.parametrize("sigma2", [1e-12, 1e-6, 3e-3, 0.5, 1e4])
def test_the_256_bin_probabilities_of_a_pixel_sum_to_one(mean, sigma2):
    total = float(one_pixel(mean, sigma2).exp().sum())
    assert total == pytest.approx(1.0, abs=1e-12)


def test_each_bin_is_the_integral_of_the_density_over_it():
    """Simpson's rule over each bin (the open end bins from 8 σ away), against log P."""
    mean, sigma2 = 0.37, 4e-4
    sigma = math.sqrt(sigma2)
    density = torch.distributions.Normal(torch.tensor(mean, dtype=torch.float64), sigma)
    half = 0.5 / 255
    got = one_pixel(mean, sigma2)
    for k in (0, 80, 93, 94, 95, 100, 255):
        lo = mean - 8 * sigma if k == 0 else k / 255 - half
        hi = mean + 8 * sigma if k == 255 else k / 255 + half
        if hi <= lo:  # a far end bin: ~0, Simpson cannot resolve it
            continue
        t = torch.linspace(lo, hi, 2001, dtype=torch.float64)
        w = torch.ones(2001, dtype=torch.float64)
        w[1:-1:2], w[2:-1:2] = 4, 2
        integral = float((w * density.log_prob(t).exp()).sum() * (hi - lo) / 6000)
        if integral > 1e-300:
            assert float(got[k]) == pytest.approx(math.log(integral), abs=1e-6), k


class LinearGaussian(nn.Module):
    """p(z) = N(0, 1) (one latent), p(x|z) = N(wz + b, σ²I) on 3 pixels; q(z|x) the exact Gaussian
    posterior of that continuous model, a valid (not exact) proposal for the discrete one."""

    sigma2 = 4e-3

    def __init__(self):
        super().__init__()
        self.latent_dim = 1
        self.w = torch.tensor([0.25, -0.2, 0.1], dtype=torch.float64)
        self.b = torch.tensor([0.5, 0.45, 0.9], dtype=torch.float64)

    def encode(self, x):
        precision = 1 + (self.w @ self.w) / self.sigma2
        mu = ((x - self.b) @ self.w / self.sigma2 / precision).view(-1, 1)
        return mu, torch.full_like(mu, precision ** -0.5)

    def decode(self, z):
        return z @ self.w.view(1, -1) + self.b, torch.tensor(math.log(self.sigma2), dtype=torch.float64)

    def discrete_log_px_by_quadrature(self, x):
        """log P(x) = log ∫ N(z; 0, 1) Π_k P(x_k | z) dz, by the trapezoid rule on a fine z grid."""
        z = torch.linspace(-9, 9, 36001, dtype=torch.float64).view(-1, 1)
        mean, log_var = self.decode(z)
        out = []
        for xi in x:
            log_f = discretized_gaussian_log_prob(xi.expand(len(z), -1), mean, log_var) - 0.5 * (
                z.squeeze(1) ** 2 + math.log(2 * math.pi))
            out.append(float(torch.logsumexp(log_f, 0) + math.log(18 / 36000)))
        return torch.tensor(out, dtype=torch.float64)


def test_on_a_linear_gaussian_model_the_discrete_iwae_converges_to_the_integral():
    model = LinearGaussian()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20, 1, generator=g, dtype=torch.float64)
    x = (z @ model.w.view(1, -1) + model.b + model.sigma2 ** 0.5 * torch.randn(20, 3, generator=g))
    x = (x.clamp(0, 1) * 255).round() / 255  # 8-bit pixels
    exact = model.discrete_log_px_by_quadrature(x)
    got = iwae_log_likelihood(model, x, k=4000, log_prob=discretized_gaussian_log_prob)
    torch.testing.assert_close(got.double(), exact, atol=5e-3, rtol=0)
    elbo = torch.stack([iwae_log_likelihood(model, x, k=1, seed=s, log_prob=discretized_gaussian_log_prob)
                        for s in range(400)]).mean(0)  # E_q[log P(x|z) p(z) / q(z|x)]: k = 1
    gap = exact - elbo  # a bound: ≥ 0 up to Monte Carlo noise; > 0 where clamped pixels make q wrong
    assert float(gap.min()) > -1e-3 and float(gap.max()) > 0.01


def test_as_bins_shrink_the_discrete_log_probability_plus_d_log_1_over_width_is_the_density():
    """log P − d·log w → log p as the bin width w = 1/(levels − 1) shrinks (here σ = 0.1, d = 6)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 6), generator=g).double() / 255  # on every grid below: 255 | levels − 1
    mean = (x + 0.05 * torch.randn(4, 6, generator=g, dtype=torch.float64)).clamp(0.2, 0.8)
    log_var = torch.tensor(math.log(0.01), dtype=torch.float64)
    density = gaussian_log_prob(x, mean, log_var).double()
    gaps = []
    for levels in (256, 255 * 16 + 1, 255 * 257 + 1):
        width = 1 / (levels - 1)
        p = discretized_gaussian_log_prob(x, mean, log_var, levels=levels)
        gaps.append(float((p - 6 * math.log(width) - density).abs().max()))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-6, gaps


def test_pixels_off_the_8_bit_grid_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match="256-level grid"):
        discretized_gaussian_log_prob(torch.full((1, 4), 0.5), torch.zeros(1, 4), torch.tensor(0.0))


def test_bits_per_dim():
    assert bits_per_dim(-784 * math.log(2), 784) == pytest.approx(1.0)
