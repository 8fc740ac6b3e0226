"""Distributions over the latent space to sample from: the prior p(z) and q̂(z) of Eq. 13.

Both share ``fit(z)``, ``sample(n, seed)`` and ``log_prob(z)`` (torch tensors in and out).

q̂(z) approximates the aggregate posterior q_φ(z) = (1/N) Σ_i q_φ(z|x_i) (Eq. 12) by a Gaussian
mixture with M full-covariance components (M = 32 for 28×28 data as in Table 1; the text says
"we often take M = 30"), fitted by scikit-learn's EM. Fitting points: **one z ~ q_φ(z|x_i) per
training image** (60,000 for MNIST). Sampling z from each posterior, rather than taking its mean
μ(x_i), makes the points an exact draw from Eq. 12's mixture, posterior widths included.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from .data import as_float


class StandardNormalPrior:
    """p(z) = N(0, I), behind the same interface as :class:`GaussianMixturePrior`."""

    def __init__(self, latent_dim: int):
        self.latent_dim = latent_dim

    def fit(self, z: torch.Tensor) -> StandardNormalPrior:
        return self

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, self.latent_dim, generator=g)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z.float().square().sum(-1) + self.latent_dim * math.log(2 * math.pi))


class GaussianMixturePrior:
    """q̂(z) = Σ_m w_m N(z; μ_m, Σ_m) (Eq. 13), scikit-learn's ``GaussianMixture`` underneath."""

    def __init__(self, n_components: int = 32, seed: int = 0, max_iter: int = 200):
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.gmm = GaussianMixture(n_components, covariance_type="full",
                                   random_state=seed, max_iter=max_iter)

    @property
    def latent_dim(self) -> int:
        return self.gmm.means_.shape[1]

    def fit(self, z: torch.Tensor) -> GaussianMixturePrior:
        if len(z) < self.gmm.n_components:
            raise ValueError(f"cannot fit {self.gmm.n_components} mixture components to {len(z)} "
                             "latent points; use fewer components or more points")
        self.gmm.fit(z.detach().double().cpu().numpy())
        return self

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """n draws, in random order. (``GaussianMixture.sample`` returns them grouped by component
        and, with an int random_state, the same draws at every call, so we draw here.)"""
        rng = np.random.default_rng(seed)
        g = self.gmm
        comp = rng.choice(len(g.weights_), size=n, p=g.weights_ / g.weights_.sum())
        eps = rng.standard_normal((n, self.latent_dim))
        chol = np.linalg.cholesky(g.covariances_)  # [M, D, D], lower
        z = g.means_[comp] + np.einsum("nij,nj->ni", chol[comp], eps)
        return torch.from_numpy(z).float()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.detach().reshape(-1, z.shape[-1]).double().cpu().numpy()
        out = torch.from_numpy(self.gmm.score_samples(flat)).float().to(z.device)
        return out.reshape(z.shape[:-1])


@torch.no_grad()
def encode_samples(model, x: torch.Tensor, batch_size: int = 1000, seed: int = 0) -> torch.Tensor:
    """One z ~ q_φ(z|x_i) per image: the points q̂ is fitted on (draws from Eq. 12)."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    out = []
    for xb in x.split(batch_size):
        mu, sigma = model.encode(as_float(xb))
        out.append(mu + sigma * torch.randn(mu.shape, generator=g, device=mu.device))
    return torch.cat(out)


def fit_aggregate_posterior(model, x: torch.Tensor, n_components: int = 32,
                            seed: int = 0) -> GaussianMixturePrior:
    """q̂(z) of Eq. 13, fitted on one posterior sample per image of ``x`` (the training set)."""
    if n_components > len(x):  # refused before encoding anything
        raise ValueError(f"cannot fit {n_components} mixture components to {len(x)} latent points; "
                         "use fewer components (--components) or more images")
    return GaussianMixturePrior(n_components, seed=seed).fit(encode_samples(model, x, seed=seed))
