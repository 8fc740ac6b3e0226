"""The Gaussian decoder likelihood p_θ(x|z), the one copy that training, ELBO and IWAE call.

- Eq. 8: one global σ² (fixed, or learned as in Eq. 9): ``log_var`` is a 0-d tensor.
- Eq. 11: a variance per pixel, σ²_k(z): ``log_var`` has the shape of ``x``.
- Eq. 10: the σ² that maximises Eq. 9 for fixed θ, φ is the mean squared error per dimension.
- Beyond the paper: the same Gaussian integrated over each 8-bit pixel's bin
  (:func:`discretized_gaussian_log_prob`), a probability of the pixels as stored, comparable with
  the discrete likelihoods of the literature where the density (Eq. 8/11) is not.

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


LEVELS = 256  # 8-bit pixels: x = k / 255, k = 0 … 255 (sigmavae.data.as_float)


def discretized_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor,
                                  levels: int = LEVELS) -> torch.Tensor:
    """log P_θ(x|z) summed over all data dimensions: the Gaussian of Eq. 8 (scalar log σ²) or
    Eq. 11 (per pixel) integrated over each pixel's bin, a probability rather than a density.

    Pixels take the values x = k/(levels − 1); bin k spans [(k − ½)/(levels − 1), (k + ½)/(levels − 1)],
    the first open below (−∞) and the last above (+∞), so a pixel's ``levels`` probabilities sum to 1
    whatever the mean and σ². Where the bin width w = 1/(levels − 1) is small against σ,
    P ≈ p·w per pixel: log P ≈ log p + d·log w (d pixels), i.e. log p − log P → d·log(levels − 1).
    Shapes as :func:`gaussian_log_prob`; returns [B] nats, computed in float64 (tails included: each
    bin's mass is log(Φ(b) − Φ(a)) from log Φ, reflected into the lower tail).
    """
    return _bin_log_prob(x, mean, log_var, levels).flatten(1).sum(1)


def _bin_log_prob(x, mean, log_var, levels: int) -> torch.Tensor:
    """Each pixel's log P (the bins of :func:`discretized_gaussian_log_prob`), float64, x's shape.
    The edges come from the level k = round(x·(levels − 1)), exactly: float32's rounding of k/255
    would move them by ~10⁻⁸, which matters where σ is that small."""
    scaled = x.double() * (levels - 1)
    k = scaled.round()
    if not bool(((scaled - k).abs() < 1e-3).all()) or bool((k < 0).any() or (k > levels - 1).any()):
        raise ValueError(f"the discretised likelihood needs pixels on the {levels}-level grid "
                         f"k/{levels - 1} (8-bit images through sigmavae.data.as_float); got values "
                         f"in [{float(x.min()):.4g}, {float(x.max()):.4g}] off that grid")
    mean, sigma = mean.double(), (0.5 * log_var.double()).exp()
    lower = torch.where(k == 0, -math.inf, ((k - 0.5) / (levels - 1) - mean) / sigma)  # first: open below
    upper = torch.where(k == levels - 1, math.inf, ((k + 0.5) / (levels - 1) - mean) / sigma)  # last: above
    flip = lower > 0  # Φ(u) − Φ(l) = Φ(−l) − Φ(−u): keep both edges where log Φ is accurate
    a, b = torch.where(flip, -upper, lower), torch.where(flip, -lower, upper)
    log_a, log_b = torch.special.log_ndtr(a), torch.special.log_ndtr(b)
    return log_b + torch.log(-torch.expm1(log_a - log_b))
