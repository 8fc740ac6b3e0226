"""The likelihood and KL terms against closed forms and torch.distributions."""

import math

import torch
from torch.distributions import Normal, kl_divergence

from sigmavae.likelihoods import gaussian_kl_to_standard_normal, gaussian_log_prob, optimal_sigma2
from sigmavae.models import VAE


def test_log_prob_matches_torch_normal_global_and_per_pixel():
    x, mean = torch.rand(5, 1, 28, 28), torch.rand(5, 1, 28, 28)
    scalar = torch.tensor(math.log(0.03))
    expected = Normal(mean, 0.03 ** 0.5).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_log_prob(x, mean, scalar), expected)  # Eq. 8
    per_pixel = torch.randn(5, 1, 28, 28) - 3
    expected = Normal(mean, (0.5 * per_pixel).exp()).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_log_prob(x, mean, per_pixel), expected)  # Eq. 11


def test_log_prob_is_fp32_for_bf16_inputs():
    x = torch.rand(3, 1, 28, 28)
    out = gaussian_log_prob(x.bfloat16(), x.bfloat16(), torch.tensor(-12.0))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_kl_matches_torch_distributions():
    mu, sigma = torch.randn(7, 16), torch.rand(7, 16) + 0.05
    expected = kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(gaussian_kl_to_standard_normal(mu, sigma), expected)


def test_closed_form_sigma2_maximises_eq9():
    """Eq. 10 is the argmax over σ² of Eq. 9 with θ, φ (and the sampled z) held fixed."""
    model = VAE(latent_dim=4, variance="global")
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        mu, sigma = model.encode(x)
        z = mu + sigma * torch.randn_like(mu)
        mean, _ = model.decode(z)
        kl = gaussian_kl_to_standard_normal(mu, sigma)

    def eq9(log_s2):
        return (gaussian_log_prob(x, mean, log_s2) - kl).mean()

    best = optimal_sigma2(x, mean)
    grid = torch.log(best) + torch.linspace(-3, 3, 601)  # σ² from best/20 to 20·best
    values = torch.stack([eq9(g) for g in grid])
    numeric = grid[values.argmax()].exp()
    assert abs(float(numeric / best) - 1) < 0.011  # grid step is 1% in σ²
    assert float(eq9(torch.log(best))) >= float(values.max()) - 1e-3
    log_s2 = torch.log(best).clone().requires_grad_(True)
    eq9(log_s2).backward()
    assert abs(float(log_s2.grad)) < 1e-2  # stationary point (Eq. 9 is ~7e4 nats here)
