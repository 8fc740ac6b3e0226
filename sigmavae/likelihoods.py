"""The Gaussian decoder likelihood p_θ(x|z), the one copy that training, ELBO and IWAE call.

- Eq. 8: one global σ² (fixed, or learned as in Eq. 9): ``log_var`` is a 0-d tensor.
- Eq. 11: a variance per pixel, σ²_k(z): ``log_var`` has the shape of ``x``.
- Eq. 10: the σ² that maximises Eq. 9 for fixed θ, φ is the mean squared error per dimension.

The variance itself comes from :meth:`sigmavae.models.VAE.decode` (fixed, global or pixel mode).
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """log p_θ(x|z) summed over all data dimensions: Eq. 8 (scalar log σ²) or Eq. 11 (per pixel).

    ``x`` and ``mean`` are [B, C, H, W] (or any [B, ...]); ``log_var`` broadcasts against them.
    Returns [B], in nats per image. Computed in fp32 whatever the input dtype, because per-pixel
    variances far below 1e-3 make the squared error / σ² ratio lose everything in bf16.
    """
    x, mean, log_var = x.float(), mean.float(), log_var.float()
    per_dim = (x - mean).square() * torch.exp(-log_var) + log_var + LOG_2PI
    return -0.5 * per_dim.flatten(1).sum(1)


def optimal_sigma2(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Eq. 10: σ²_* = (1/d) E_q[Σ_k (g_k(z) - x_k)²], averaged over the images given.

    ``mean`` holds g_θ(z) for z ~ q_φ(z|x) (one or more samples per image, stacked along dim 0
    exactly like ``x``). It is the maximiser of Eq. 9 in σ² because Eq. 9 is
    -d/2 log σ² - S/(2σ²) + const in σ², whose only stationary point is σ² = S/d.
    """
    return (x.float() - mean.float()).square().mean()


def gaussian_kl_to_standard_normal(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL[N(μ, diag σ²) ‖ N(0, I)] per row (term ② of Eq. 5), in closed form. Returns [B]."""
    mu, sigma = mu.float(), sigma.float()
    return 0.5 * (mu.square() + sigma.square() - 1.0 - 2.0 * torch.log(sigma)).sum(1)
