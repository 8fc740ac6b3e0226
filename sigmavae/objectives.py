"""Training objectives, one small function per method: ``(model, x, config) -> (loss, terms)``.

Every method uses the same networks and training loop and differs only here:

- ``sigma`` (ours), ``fixed``, ``vae``, ``beta-vae``: -ELBO (Eq. 5), with the likelihood of
  Eq. 8 / 9 / 11 and an optional weight β on the KL term (Higgins et al.'s β-VAE; β = 1 default).
- ``dip-vae``: -ELBO + DIP-VAE's moment-matching penalty (Kumar, Sattigeri, Balakrishnan 2018).
- ``wae``: WAE-MMD (Tolstikhin, Bousquet, Gelly, Schölkopf 2018), IMQ kernel.

``terms`` are the ELBO's two terms under the model's Gaussian likelihood, for logging; they come
from the same forward pass as the loss. ``elbo_terms`` is the single-sample estimate of Eq. 5 that
the ELBO metric shares; its likelihood is :func:`sigmavae.likelihoods.gaussian_log_prob`.

Under ``torchrun`` each rank sees its shard of the global batch; the optional ``shard``
(:class:`sigmavae.distributed.Shard`) turns batch means, Eq. 10's σ²_* and the DIP-VAE / WAE batch
statistics into global-batch ones. The default, :data:`~sigmavae.distributed.LOCAL`, is one
process: the shard is the batch, and every number is what it was before DDP existed.

Objectives draw nothing: the noise of a step (ε of the reparameterisation; WAE's prior samples too)
is drawn first by :func:`draw_noise`, from the model's own generator, and passed in (an exact
resume restores that generator). Objectives have no side effects: they read the model and never
write it. Where σ² comes from
Eq. 10 (``sigma_update="closed_form"``), the objective returns the σ²_* it used in
``terms.sigma2_star`` and the training step stores it (:func:`sigmavae.epoch.run_epoch`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .config import METHODS
from .distributed import LOCAL, Shard
from .likelihoods import gaussian_kl_to_standard_normal, gaussian_log_prob, optimal_sigma2


class ElboTerms(NamedTuple):
    recon: torch.Tensor  # [B] term ① of Eq. 5: log p_θ(x|z), z ~ q_φ(z|x) (one sample)
    kl: torch.Tensor  # [B] term ② of Eq. 5: KL[q_φ(z|x) ‖ p(z)], closed form
    log_var: torch.Tensor  # the decoder's log σ² (0-d, or per pixel)
    mu: torch.Tensor  # [B, D] posterior means
    sigma: torch.Tensor  # [B, D] posterior standard deviations
    z: torch.Tensor  # [B, D] the sample
    mean: torch.Tensor  # g_θ(z)
    sigma2_star: torch.Tensor | None = None  # 0-d Eq. 10 σ²_* the likelihood used (closed form), else None

    @property
    def elbo(self) -> torch.Tensor:
        return self.recon - self.kl


def draw_noise(config, n: int, latent_dim: int, generator: torch.Generator,
               device: torch.device) -> tuple[torch.Tensor, ...]:
    """What one step of ``config.method`` on ``n`` images draws, in the order it uses them: ε for
    z = μ + ε ⊙ σ, then (WAE) ``n`` samples of the prior p(z) = N(0, I); each [n, latent_dim]."""
    return tuple(torch.randn(n, latent_dim, generator=generator, device=device)
                 for _ in range(DRAWS[config.method]))


def elbo_terms(model, x: torch.Tensor, closed_form_sigma: bool = False, shard: Shard = LOCAL,
               generator: torch.Generator | None = None, eps: torch.Tensor | None = None) -> ElboTerms:
    """Eq. 5 for one reparameterised sample z = μ + ε ⊙ σ: ``eps`` as given, else drawn from
    ``generator`` (default: torch's global stream).

    With ``closed_form_sigma`` the likelihood is evaluated at Eq. 10's optimum σ²_* for this batch
    and this forward pass (θ, φ held fixed; detached, so no gradient flows through it): the
    iterative scheme of §3.3. σ²_* is returned in ``sigma2_star``; the model is not changed.
    Under DDP σ²_* is the mean squared error of the global batch (``shard.global_mean``).
    """
    mu, sigma = model.encode(x)
    if eps is None:
        eps = torch.randn_like(mu) if generator is None else torch.randn(
            mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + sigma * eps
    mean, log_var = model.decode(z)
    sigma2_star = None
    if closed_form_sigma:
        if not shard.ctx.active:
            sigma2_star = optimal_sigma2(x, mean).detach()
        else:  # Eq. 10 over the global batch: every rank evaluates the likelihood at the same σ²_*
            sigma2_star = shard.global_mean((x.float() - mean.float()).square()).detach()
        # log σ² exactly as VAE.log_sigma2 computes it once set_sigma2(σ²_*) has stored σ = √σ²_*:
        # the loss is the one the stored model gives, to the last bit.
        log_var = 2.0 * torch.log(sigma2_star.sqrt().clamp_min(1e-6))
    return ElboTerms(gaussian_log_prob(x, mean, log_var), gaussian_kl_to_standard_normal(mu, sigma),
                     log_var.detach(), mu, sigma, z, mean, sigma2_star)


def elbo_loss(model, x: torch.Tensor, config, shard: Shard = LOCAL,
              noise: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, ElboTerms]:
    """-(recon - β·KL) averaged over the batch: Eq. 9 in the global mode, Eq. 11 in the pixel mode,
    Eq. 8 with σ² fixed (VAE σ² = 0.5, β-VAE σ² = 1 as the paper frames them). ``noise``: from
    :func:`draw_noise` (None: ε from torch's global stream)."""
    closed = model.variance == "global" and config.sigma_update == "closed_form"
    t = elbo_terms(model, x, closed_form_sigma=closed, shard=shard, eps=None if noise is None else noise[0])
    return -shard.mean(t.recon - config.beta * t.kl), t


def dip_covariance(mu: torch.Tensor, sigma: torch.Tensor, dip_type: str) -> torch.Tensor:
    """The covariance DIP-VAE pushes towards I (Kumar et al. 2018, Eqs. 6-7), over the batch:
    DIP-VAE-I: Cov[μ(x)]; DIP-VAE-II: Cov_q(z) = E[diag σ²(x)] + Cov[μ(x)]."""
    centred = mu - mu.mean(0, keepdim=True)
    cov = centred.T @ centred / len(mu)
    if dip_type == "ii":
        cov = cov + torch.diag(sigma.square().mean(0))
    return cov


def dip_vae_loss(model, x: torch.Tensor, config, shard: Shard = LOCAL,
                 noise: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, ElboTerms]:
    """-ELBO + λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii - 1)² (Kumar et al. 2018, Eq. 8 / 9).

    Under DDP C is the global batch's covariance, from μ and σ all-gathered with their gradient
    (``shard.gather``): the same penalty as one process with the whole batch, not a mean of per-rank
    covariances (which would be a different, smaller-batch estimator)."""
    loss, t = elbo_loss(model, x, config, shard, noise)
    cov = dip_covariance(shard.gather(t.mu), shard.gather(t.sigma), config.dip_type)
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    lambda_od, lambda_d = config.dip_lambdas()
    return loss + lambda_od * off.square().sum() + lambda_d * (diag - 1).square().sum(), t


def imq_mmd(a: torch.Tensor, b: torch.Tensor, prior_var: float = 1.0) -> torch.Tensor:
    """Unbiased MMD² between samples ``a`` and ``b`` with the inverse multiquadratics kernel
    k(x, y) = C / (C + ‖x - y‖²), C = 2·d_z·σ²_z, summed over C·{0.1, 0.2, 0.5, 1, 2, 5, 10}
    (Tolstikhin et al. 2018, §4, and their wae.py)."""
    n, d = a.shape
    both = torch.cat([a, b])
    dist = torch.cdist(both, both).square()
    off_diag = 1.0 - torch.eye(n, device=a.device, dtype=a.dtype)
    stat = a.new_zeros(())
    for scale in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0):
        c = 2.0 * d * prior_var * scale
        k = c / (c + dist)
        k_aa, k_bb, k_ab = k[:n, :n], k[n:, n:], k[:n, n:]
        stat = stat + ((k_aa + k_bb) * off_diag).sum() / (n * (n - 1)) - 2.0 * k_ab.mean()
    return stat


def wae_mmd_loss(model, x: torch.Tensor, config, shard: Shard = LOCAL,
                 noise: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, ElboTerms]:
    """WAE-MMD: c(x, g(z)) + λ·MMD(q(z), p(z)) with z ~ q(z|x), p(z) = N(0, I).

    c is the authors' 'l2sq' cost, 0.05·‖x - g(z)‖² (their wae.py), i.e. a Gaussian decoder with
    σ² = 10 up to constants; the model's fixed σ² is set to 10 so its logged ELBO matches.

    The unbiased MMD of the global batch does not split into per-rank terms (its cross terms pair
    images of different ranks), so under DDP the codes z and the prior draws of every rank are
    all-gathered, z with its gradient (``shard.gather``), and each rank computes the one global
    MMD: exactly the one-process estimator at B = the global batch, at the price of the B×B kernel
    on every rank (B = 256: negligible beside the networks).
    """
    t = elbo_terms(model, x, shard=shard, eps=None if noise is None else noise[0])
    cost = 0.05 * shard.mean((x.float() - t.mean.float()).square().flatten(1).sum(1))
    prior = torch.randn_like(t.z) if noise is None else noise[1]
    z, prior = shard.gather(t.z.float()), shard.gather(prior.float())
    return cost + config.wae_lambda_value() * imq_mmd(z, prior), t


OBJECTIVES = {
    "sigma": elbo_loss,
    "fixed": elbo_loss,
    "vae": elbo_loss,
    "beta-vae": elbo_loss,
    "dip-vae": dip_vae_loss,
    "wae": wae_mmd_loss,
}
DRAWS = {method: 2 if method == "wae" else 1 for method in OBJECTIVES}  # noise tensors per step
if tuple(OBJECTIVES) != METHODS:  # one objective per method TrainConfig accepts, in its order
    raise ImportError(f"OBJECTIVES {tuple(OBJECTIVES)} do not match sigmavae.config.METHODS {METHODS}")
