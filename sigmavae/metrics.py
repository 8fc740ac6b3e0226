"""Evaluation: ELBO (Eq. 5), IWAE log-likelihood (Burda et al. 2015), KL(q̂‖p) (Table 1).

All likelihoods go through :func:`sigmavae.likelihoods.gaussian_log_prob` (or its 8-bit version,
:func:`~sigmavae.likelihoods.discretized_gaussian_log_prob`) with the model's own σ² (fixed, global
or per pixel): nothing here assumes σ² = 1.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal

from .data import as_float
from .likelihoods import gaussian_log_prob
from .objectives import elbo_terms
from .sampling import StandardNormalPrior


@torch.no_grad()
def elbo(model, x: torch.Tensor, batch_size: int = 1000, seed: int = 0) -> dict:
    """Mean single-sample ELBO of Eq. 5 over ``x``, with its two terms (nats per image) and the
    ELBO's standard error over the images (``elbo_stderr``). The samples z come from a generator
    seeded with ``seed`` (torch's global stream is left alone)."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    sums = torch.zeros(4, dtype=torch.float64)
    for xb in x.split(batch_size):
        t = elbo_terms(model, as_float(xb), generator=g)
        e = t.elbo.double()
        sums += torch.stack([e.sum(), t.recon.double().sum(), t.kl.double().sum(), e.square().sum()]).cpu()
    e, r, k, e2 = (sums / len(x)).tolist()
    n = len(x)
    var = max(e2 - e * e, 0.0) * n / max(n - 1, 1)
    return {"elbo": e, "recon": r, "kl": k, "elbo_stderr": math.sqrt(var / n)}


def iwae_log_likelihood(model, x: torch.Tensor, k: int = 20, prior=None, max_points: int | None = None,
                        seed: int = 0, log_prob=gaussian_log_prob) -> torch.Tensor:
    """Per-image IWAE bound log (1/k) Σ_j p_θ(x|z_j) p(z_j) / q_φ(z_j|x), z_j ~ q_φ(z|x).

    ``prior`` is p(z): the standard normal (default) or q̂ (:class:`GaussianMixturePrior`), which
    turns the model into p_θ(x|z) q̂(z). k = 1 is the ELBO; the bound rises with k towards log p(x).
    Returns a [N] tensor (nats) on the CPU; images are processed ``max_points // k`` at a time
    (default: 1024 decoder passes on a CPU, where larger chunks fall out of the caches and
    were 1.6–1.8× slower in bench/iwae_speed.py, and 8192 on a GPU). ``log_prob``: log p_θ(x|z),
    the density of Eq. 8/11 (default) or :func:`sigmavae.likelihoods.discretized_gaussian_log_prob`,
    which makes it a bound on the probability of the 8-bit pixels, log P(x).
    """
    prior = prior or StandardNormalPrior(model.latent_dim)
    return iwae_log_likelihoods(model, x, k, {"p": prior}, max_points, seed, log_prob=log_prob)["p"]


@torch.no_grad()
def iwae_log_likelihoods(model, x: torch.Tensor, k: int, priors: dict, max_points: int | None = None,
                         seed: int = 0, log_prob=gaussian_log_prob) -> dict[str, torch.Tensor]:
    """:func:`iwae_log_likelihood` under each of ``priors`` (name → p(z)), from the same k samples
    per image: the decoder, which is nearly all of the cost, runs once for all of them."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if max_points is None:
        max_points = 1024 if x.device.type == "cpu" else 8192
    g = torch.Generator(device=x.device).manual_seed(seed)
    out: dict[str, list] = {name: [] for name in priors}
    for xb in x.split(max(1, max_points // k)):
        mu, sigma = model.encode(xb)  # [B, D]
        z = mu + sigma * torch.randn((k, *mu.shape), generator=g, device=mu.device)  # [k, B, D]
        log_q = Normal(mu, sigma).log_prob(z).sum(-1)  # [k, B]
        mean, log_var = model.decode(z.flatten(0, 1))
        x_rep = xb.expand(k, *xb.shape).flatten(0, 1)
        log_px_z = log_prob(x_rep, mean, log_var).view(k, len(xb))
        for name, prior in priors.items():
            log_w = log_px_z + prior.log_prob(z).to(log_q.device) - log_q
            out[name].append((torch.logsumexp(log_w.double(), 0) - math.log(k)).cpu())
    return {name: torch.cat(parts) for name, parts in out.items()}


def bits_per_dim(log_p, d: int):
    """A log-likelihood in nats per image as bits per dimension: −log P / (d·ln 2), the unit of the
    discrete image likelihoods in the literature (lower is better)."""
    return -log_p / (d * math.log(2))


def kl_divergence_mc(q, p, n: int = 10_000, runs: int = 10, seed: int = 0) -> tuple[float, float]:
    """KL(q‖p) ≈ mean over z ~ q of log q(z) - log p(z); ``runs`` independent estimates of ``n``
    samples each → (mean, std), as Table 1 reports D_KL(q̂(z)‖p(z)) (10k samples, 10 runs). One run
    has no spread to measure: its std is NaN, not 0."""
    estimates = []
    for r in range(runs):
        z = q.sample(n, seed=seed + r)
        estimates.append(float((q.log_prob(z) - p.log_prob(z)).mean()))
    t = torch.tensor(estimates, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if runs > 1 else math.nan


def kl_divergences_mc(q, targets: dict, n: int, runs: int, seed: int = 0) -> dict[str, list[float]]:
    """KL(q‖t) for each ``targets`` t (name → distribution with ``log_prob``), by Monte Carlo from
    the same z ~ q: ``runs`` estimates of ``n`` samples each, per name a list of the runs'
    estimates (those of two targets are paired run by run). log q is computed once per run: the
    aggregate posterior's (Eq. 12) is the costly one."""
    out: dict[str, list[float]] = {name: [] for name in targets}
    for r in range(runs):
        z = q.sample(n, seed=seed + r)
        log_q = q.log_prob(z).double()
        for name, t in targets.items():
            out[name].append(float((log_q - t.log_prob(z).double()).mean()))
    return out


# ----------------------------------------------------------------------------- a reference that ignores z

@torch.no_grad()
def paired_difference(a, b) -> tuple[float, float]:
    """Mean and standard error of a − b, element by element (e.g. two models' log-likelihoods of
    the same test images: the images' own spread cancels)."""
    d = torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)
    return float(d.mean()), float(d.std()) / math.sqrt(len(d))


def mean_image_log_likelihood(x_train: torch.Tensor, x_test: torch.Tensor,
                              sigma2: float | None = None) -> tuple[torch.Tensor, float]:
    """log p(x) of each test image under the decoder that ignores z and always outputs the
    training set's mean image m, with one global σ²: N(x; m, σ²I), exactly (p(x|z) does not depend
    on z, so every IWAE bound equals it). ``sigma2`` None takes its own best σ², the maximiser of
    the training set's likelihood: Eq. 10 with g ≡ m, the mean squared deviation from m.

    A model that does not beat this at its own σ² has learned nothing from z (issue 19: collapse).
    Returns (per-image log-likelihoods [N] in nats, float64 on the CPU; the σ² used)."""
    mean = torch.zeros(x_train.shape[1:], dtype=torch.float64)
    for xb in x_train.split(4096):
        mean += as_float(xb).double().cpu().sum(0)
    mean /= len(x_train)
    if sigma2 is None:
        total = sum(float((as_float(xb).double().cpu() - mean).square().sum()) for xb in x_train.split(4096))
        sigma2 = total / x_train.numel()
    x = as_float(x_test).double().cpu()
    log_var = torch.tensor(math.log(sigma2), dtype=torch.float64)
    return gaussian_log_prob(x, mean.expand_as(x), log_var).double(), float(sigma2)


# ----------------------------------------------------------------------------- ranks (Figure 3)

def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of a 1-d tensor, tied values sharing their mean rank (float64)."""
    _, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return (ends - (counts.double() - 1) / 2)[inverse]


def auroc(score: torch.Tensor, positive: torch.Tensor) -> float:
    """P(score of a positive > score of a negative), ties counting ½: the Mann-Whitney U over
    n₊n₋. Ties matter here: Figure 3's σ² sits exactly at the floor for most pixels."""
    ranks = average_ranks(score)
    n_pos = float(positive.sum())
    n_neg = len(score) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's ρ: the correlation of the (tie-averaged) ranks."""
    return float(torch.corrcoef(torch.stack([average_ranks(a), average_ranks(b)]))[0, 1])
