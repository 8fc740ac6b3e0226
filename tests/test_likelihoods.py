"""The likelihood and KL terms against closed forms and torch.distributions."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from sigmavae.likelihoods import gaussian_kl_to_standard_normal, gaussian_log_prob, optimal_sigma2


def test_log_prob_matches_torch_normal_global_and_per_pixel():
    x, mean = torch.rand(5, 1, 28, 28), torch.rand(5, 1, 28, 28)
    scalar = torch.tensor(math.log(0.03))
    expected = Normal(mean, 0.03 ** 0.5).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_log_prob(x, mean, scalar), expected)  # Eq. 8
    per_pixel = torch.randn(5, 1, 28, 28) - 3
    expected = Normal(mean, (0.5 * per_pixel).exp()).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_log_prob(x, mean, per_pixel), expected)  # Eq. 11


def test_log_prob_of_bf16_inputs_is_the_exact_density_of_those_values():
    """Per-pixel σ² far below 1e-3 (here 6e-6): in bf16 (x - mean)²/σ² keeps ~3 significant digits
    and the sum over 784 pixels is off by thousands of nats; computed in fp32 it is exact."""
    x = torch.rand(3, 1, 28, 28).bfloat16()
    mean = (x.float() + 0.003 * torch.randn(3, 1, 28, 28)).bfloat16()
    log_var = torch.tensor(-12.0)
    out = gaussian_log_prob(x, mean, log_var)
    assert out.dtype == torch.float32
    exact = Normal(mean.double(), math.exp(-6.0)).log_prob(x.double()).flatten(1).sum(1)
    torch.testing.assert_close(out.double(), exact, rtol=1e-5, atol=0)
    sq = (x - mean).square() * torch.exp(-log_var).bfloat16()  # what bf16 arithmetic would give
    in_bf16 = -0.5 * (sq + log_var.bfloat16() + math.log(2 * math.pi)).flatten(1).sum(1, dtype=torch.bfloat16)
    assert float((in_bf16.double() - exact).abs().max()) > 100 * float((out.double() - exact).abs().max())


def test_kl_matches_torch_distributions():
    mu, sigma = torch.randn(7, 16), torch.rand(7, 16) + 0.05
    expected = kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(gaussian_kl_to_standard_normal(mu, sigma), expected)


def test_closed_form_sigma2_maximises_eq9(one_thread):
    """Eq. 10 is the argmax over σ² of Eq. 9 with θ, φ (and the sampled z) held fixed: in σ², Eq. 9 is
    -(d/2) log σ² - S/(2σ²) + const, whose only stationary point is σ² = S/d, where its likelihood
    term is -(d/2)(log 2πσ²_* + 1) per image. Reconstructions and KL here are any fixed numbers."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28, generator=g)
    mean = (x + 0.15 * torch.randn(x.shape, generator=g)).clamp(0, 1)  # g_θ(z), one z per image
    kl = 20 * torch.rand(64, generator=g)  # does not depend on σ²
    d = 28 * 28

    def eq9(log_s2):
        return (gaussian_log_prob(x, mean, log_s2) - kl).mean()

    best = optimal_sigma2(x, mean)
    sse = (x.double() - mean.double()).square().sum()
    assert float(best) == pytest.approx(float(sse) / x.numel(), rel=1e-5)  # (1/d) Σ_k, averaged over images
    assert float(eq9(torch.log(best))) == pytest.approx(
        -d / 2 * (math.log(2 * math.pi * float(best)) + 1) - float(kl.mean()), rel=1e-5)
    grid = torch.log(best) + torch.linspace(-3, 3, 601)  # σ² from best/20 to 20·best, 1% steps
    values = torch.stack([eq9(s) for s in grid])
    assert abs(float(grid[values.argmax()].exp() / best) - 1) < 0.011
    assert float(eq9(torch.log(best))) >= float(values.max()) - 1e-3
    log_s2 = torch.log(best).clone().requires_grad_(True)
    eq9(log_s2).backward()
    assert abs(float(log_s2.grad)) < 1e-2  # stationary (Eq. 9 is ~ -1e3 nats here)
    # several z per image, stacked along dim 0 as x is: the mean over all of them
    twice = optimal_sigma2(torch.cat([x, x]), torch.cat([mean, x]))
    assert float(twice) == pytest.approx(float(best) / 2, rel=1e-5)
