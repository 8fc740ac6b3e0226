"""Beyond the paper: published numbers from outside it, and the claims of the "Beyond the paper"
page as pure functions of our measured :class:`~sigmavae.claims.Estimate` s.

Three questions the paper leaves open (issue 22): how our likelihoods compare with the discrete
8-bit MNIST likelihoods of the literature (:data:`MNIST_8BIT`), what stage 2 of Algorithm 1 buys
over more epochs of stage 1 (:func:`stage2_claims`; Rybkin et al. 2021 find a per-pixel variance
"often gives suboptimal results" against a shared σ), and how σ should be learned
(:func:`sigma_learning_claims`). Nothing here trains, samples or draws; :mod:`sigmavae.paper`
holds the paper's own numbers and claims.
"""

from __future__ import annotations

import math

from .claims import Claim, Estimate, positive
from .paper import decided

# Published test likelihoods of 8-bit (256-level, not binarised) MNIST in bits per dimension, lower
# is better: (model, value, where it is published, what it is). The flows' are densities of
# uniformly dequantised pixels, (x·255 + u)/256 with log 256 per dimension subtracted: a lower bound
# on the 8-bit log P(x) in expectation, so their bits/dim bound the discrete ones from above, as
# our IWAE bounds do. None is an exact discrete likelihood. Binarised MNIST (IWAE ≈ 85 nats) is a
# different benchmark and is not listed.
_DEQUANTISED = "dequantised density (bound on the 8-bit log P(x))"
MNIST_8BIT: list[tuple[str, float, str, str]] = [
    ("MADE", 2.04, "Germain et al. 2015, as listed by Grathwohl et al. 2019 (FFJORD), Table 2", _DEQUANTISED),
    ("MAF", 1.89, "Papamakarios et al. 2017, as listed by Grathwohl et al. 2019, Table 2", _DEQUANTISED),
    ("Real NVP", 1.06, "Grathwohl et al. 2019, Table 2", _DEQUANTISED),
    ("Glow", 1.05, "Grathwohl et al. 2019, Table 2", _DEQUANTISED),
    ("FFJORD (multi-scale)", 0.99, "Grathwohl et al. 2019, Table 2", _DEQUANTISED),
    ("Bit-Swap (hierarchical VAE)", 1.29, "Kingma, Abbeel and Ho 2019, the fhkingma/bitswap README",
     "compression rate (a bound on the 8-bit log P(x)) per pixel of the images zero-padded to 32×32: "
     "at most 1.68 per 28×28 pixel"),
]
# Rybkin, Daniilidis and Levine (2020), "Simple and effective VAE training with calibrated
# decoders", ICLR 2021 submission (OpenReview nkap3LV7t7O), MNIST ablation: FID of a per-pixel
# variance decoder against a shared σ learned by their closed form (σ-VAE).
RYBKIN_MNIST_FID = {"per-pixel σ": 132.5, "shared σ (σ-VAE)": 32.2}


def adam_sigma_bound(lr: float, steps: int, start: float = 1.0) -> dict[str, float]:
    """How far Adam can move σ² in ``steps`` steps of learning rate ``lr`` from σ = ``start``:
    Adam's step is at most about ``lr`` per parameter (Kingma and Ba 2015, §2.1), so on σ the
    smallest reachable σ² is (start − lr·steps)² and on log σ it is start²·exp(−2·lr·steps)."""
    reach = lr * steps
    return {"sigma": max(start - reach, 0.0) ** 2, "log_sigma": start ** 2 * math.exp(-2 * reach)}


def stage2_claims(pixel_over_global: Estimate, pixel_over_global_discrete: Estimate,
                  fid_pixel_minus_global: dict[str, Estimate], collapsed_models=(), *,
                  collapsed_samples=None) -> list[Claim]:
    """What stage 2 (a per-pixel σ² with the floor, Eq. 11) buys over stage 1 run for as many
    epochs in all: the test IWAE (q̂) as a density and as a probability of the 8-bit pixels (paired
    image by image), and Rybkin et al.'s finding that a per-pixel variance gives worse samples,
    FID_pixel − FID_global for samples from q̂ and from the prior (paired replicate by replicate).
    ``collapsed_models`` decides the likelihood claims, ``collapsed_samples`` (default: the same)
    the FID claims (:func:`sigmavae.scores.beats_mean_image` with ``samples``)."""
    models = ["ours, pixel σ²", "ours, global σ², equal epochs"]
    samples = collapsed_models if collapsed_samples is None else collapsed_samples
    out = [positive("stage 2 raises the test log-likelihood over stage 1 at equal epochs "
                    "(density, IWAE with q̂)", pixel_over_global, "nats"),
           positive("stage 2 raises the probability of the 8-bit test pixels over stage 1 at equal "
                    "epochs (discrete IWAE with q̂)", pixel_over_global_discrete, "nats")]
    out = [decided(c, models, collapsed_models) for c in out]
    for source, d in fid_pixel_minus_global.items():
        text = (f"Rybkin et al.: the per-pixel variance gives worse samples than the shared one (FID from "
                f"{'q̂' if source == 'qhat' else 'the prior'}, pixel − global)")
        out.append(decided(positive(text, d, "FID"), models, samples))
    return out


def sigma_learning_claims(sigma_over_log_sigma: Estimate, closed_over_sigma: Estimate,
                          fid_sigma_minus_closed: Estimate, collapsed_models=(), *,
                          collapsed_samples=None) -> list[Claim]:
    """How σ² is learned in stage 1, after the same epochs: Adam on log σ lags Adam on σ (test IWAE
    with q̂, paired), and Rybkin et al.'s "optimal σ" (Eq. 10 every batch) beats Adam on σ, in
    IWAE and in FID from q̂ (FID_Adam − FID_Eq.10 > 0). ``collapsed_samples`` (default:
    ``collapsed_models``) decides the FID claim."""
    out = [decided(positive("Adam on log σ lags Adam on σ (test IWAE with q̂, σ − log σ)",
                            sigma_over_log_sigma, "nats"), ["Adam on σ", "Adam on log σ"], collapsed_models)]
    samples = collapsed_models if collapsed_samples is None else collapsed_samples
    for text, d, unit, gone in (("Eq. 10's closed form beats Adam on σ (test IWAE with q̂)",
                                 closed_over_sigma, "nats", collapsed_models),
                                ("Eq. 10's closed form beats Adam on σ (FID from q̂, Adam − Eq. 10)",
                                 fid_sigma_minus_closed, "FID", samples)):
        out.append(decided(positive(text, d, unit), ["Adam on σ", "Eq. 10 (closed form)"], gone))
    return out
