"""Training objectives: each is a small function ``(model, x, config) -> (loss, stats)``.

``elbo_terms`` is the single-sample estimate of Eq. 5 that every objective and the ELBO metric
share; the likelihood inside it is :func:`sigmavae.likelihoods.gaussian_log_prob` (Eq. 8 / 11).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .likelihoods import gaussian_kl_to_standard_normal, gaussian_log_prob, optimal_sigma2


class ElboTerms(NamedTuple):
    recon: torch.Tensor  # [B] term ① of Eq. 5: log p_θ(x|z), z ~ q_φ(z|x) (one sample)
    kl: torch.Tensor  # [B] term ② of Eq. 5: KL[q_φ(z|x) ‖ p(z)], closed form
    log_var: torch.Tensor  # the decoder's log σ² (0-d, or per pixel)

    @property
    def elbo(self) -> torch.Tensor:
        return self.recon - self.kl


def elbo_terms(model, x: torch.Tensor, closed_form_sigma: bool = False) -> ElboTerms:
    """Eq. 5 for one reparameterised sample z = μ + ε ⊙ σ.

    With ``closed_form_sigma`` the global σ² is first set to Eq. 10's optimum for this batch
    (θ, φ held fixed), then the likelihood is evaluated with it: the iterative scheme of §3.3.
    """
    mu, sigma = model.encode(x)
    z = mu + sigma * torch.randn_like(mu)
    mean, log_var = model.decode(z)
    if closed_form_sigma:
        with torch.no_grad():
            model.set_sigma2(optimal_sigma2(x, mean))
        log_var = model.log_sigma2()
    return ElboTerms(gaussian_log_prob(x, mean, log_var), gaussian_kl_to_standard_normal(mu, sigma),
                     log_var.detach())


def elbo_loss(model, x: torch.Tensor, config) -> tuple[torch.Tensor, ElboTerms]:
    """-ELBO averaged over the batch (Eq. 9 in the global mode, Eq. 11 in the pixel mode)."""
    closed = model.variance == "global" and config.sigma_update == "closed_form"
    terms = elbo_terms(model, x, closed_form_sigma=closed)
    return -terms.elbo.mean(), terms
