"""The scores of one trained model, each computed once and cached beside it (:meth:`Store.score`):
the same functions for the notebooks and for ``sigmavae evaluate``.

Every score carries its uncertainty: ELBO and IWAE ± their standard error over the test images
(the q̂-over-prior IWAE gain paired image by image), KL(q̂‖p) ± the Monte Carlo standard error
over runs, FID ± its bootstrap std. Each takes the model's config, the checked
:class:`~sigmavae.params.Params` (what to compute) and a seed; the settings that determine the
number are the cache key.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from .cache import Store
from .config import TrainConfig
from .fid import fid_with_std, generate, real_features
from .metrics import auroc, elbo, iwae_log_likelihoods, kl_divergence_mc, mean_image_log_likelihood, spearman
from .params import Params
from .sampling import StandardNormalPrior, encode_samples
from .training import dataset_sigma2


def qhat(store: Store, config: TrainConfig, p: Params, seed: int, components: int | None = None):
    """q̂ (Eq. 13) of ``config``'s model with ``components`` (default ``p.components``) Gaussians."""
    return store.qhat(config, components or p.components, seed, p.qhat_points)


def latent_distribution(store: Store, config: TrainConfig, p: Params, seed: int, source: str):
    """Where z comes from: "qhat" (q̂ with ``p.components``) or "prior" (p(z) = N(0, I))."""
    if source == "qhat":
        return qhat(store, config, p, seed)
    if source == "prior":
        return StandardNormalPrior(config.latent_dim)
    raise ValueError(f"unknown latent source {source!r}; choose qhat or prior")


def elbo_score(store: Store, config: TrainConfig, p: Params, seed: int) -> dict:
    """The single-sample ELBO (Eq. 5) over the whole test set: ``elbo``, ``elbo_stderr``, and its
    two terms ``recon`` and ``kl``."""
    x = store.images(p.dataset, "test")
    return store.score(config, "elbo", {"n": len(x), "seed": seed, "noise": "generator"},
                       lambda: elbo(store.model(config), x, seed=seed))


def _iwae(model, x, p: Params, q, seed: int) -> dict:
    """IWAE with the prior and with ``q`` (q̂) from the same importance samples: per image (so that
    differences between models on the same test images are paired), means, standard errors."""
    priors = {"prior": StandardNormalPrior(model.latent_dim), "qhat": q}
    ll = iwae_log_likelihoods(model, x, p.iwae_k, priors, seed=seed)
    ll["gain"] = ll["qhat"] - ll["prior"]
    root = math.sqrt(len(x))
    return {k: {"mean": float(v.mean()), "stderr": float(v.std()) / root, "per_image": v.tolist()}
            for k, v in ll.items()}


def iwae_score(store: Store, config: TrainConfig, p: Params, seed: int) -> dict:
    """IWAE (k = ``p.iwae_k``) on the first ``p.n_samples`` test images, with the prior and with
    q̂, from the same importance samples: means, standard errors over images, the paired gain, and
    the per-image values (``per_image``)."""
    def compute():
        x = store.images(p.dataset, "test")[:p.n_samples]
        return _iwae(store.model(config), x, p, qhat(store, config, p, seed), seed)

    return store.score(config, "iwae", {"n": p.n_samples, "k": p.iwae_k, "components": p.components,
                                        "seed": seed, "per_image": True}, compute)


def calibrated_iwae_score(store: Store, config: TrainConfig, p: Params, seed: int) -> dict:
    """The model's decoder at its own best global σ² (Rybkin et al.'s calibrated decoder; the
    "optimal σ" of their σ-VAE): σ²_cal by Eq. 10 over the training set
    (:func:`sigmavae.training.dataset_sigma2`, one z per image), then the IWAE of
    :func:`iwae_score` at σ²_cal, with the same q̂ (it depends on the encoder alone) and the same
    importance samples. For a model trained at a fixed σ² this is the likelihood its decoder could
    have had; ``sigma2`` holds σ²_cal."""
    def compute():
        model = copy.deepcopy(store.model(config))
        if model.variance == "pixel":
            raise ValueError("a per-pixel variance has no global σ² to calibrate")
        sigma2 = dataset_sigma2(model, store.images(p.dataset, "train"), seed)
        model.set_sigma2(sigma2)
        x = store.images(p.dataset, "test")[:p.n_samples]
        return {"sigma2": model.sigma2, **_iwae(model, x, p, qhat(store, config, p, seed), seed)}

    return store.score(config, "iwae-calibrated", {"n": p.n_samples, "k": p.iwae_k,
                                                   "components": p.components, "seed": seed}, compute)


def mean_image_score(store: Store, p: Params, sigma2: float | None) -> dict:
    """The reference that ignores z (:func:`sigmavae.metrics.mean_image_log_likelihood`) on the
    first ``p.n_samples`` test images, at ``sigma2`` (None: its own best σ², Eq. 10 on the
    training set): its exact log p(x) per image, mean, standard error, and the σ² used."""
    ll, s2 = mean_image_log_likelihood(store.images(p.dataset, "train"),
                                       store.images(p.dataset, "test")[:p.n_samples], sigma2)
    return {"mean": float(ll.mean()), "stderr": float(ll.std()) / math.sqrt(len(ll)), "sigma2": s2,
            "per_image": ll.tolist()}


def kl_score(store: Store, config: TrainConfig, p: Params, seed: int) -> tuple[float, float | None]:
    """KL(q̂‖p) by Monte Carlo (Table 1: 10k samples × 10 runs): (mean, standard error of it);
    with one run there is no error estimate (None), so no claim rests on it."""
    def compute():
        mean, std = kl_divergence_mc(qhat(store, config, p, seed), StandardNormalPrior(config.latent_dim),
                                     p.kl_samples, p.kl_runs, seed=seed)
        return {"mean": mean, "std": std if p.kl_runs > 1 else None, "runs": p.kl_runs}

    s = store.score(config, "kl", {"components": p.components, "seed": seed, "samples": p.kl_samples,
                                   "runs": p.kl_runs}, compute)
    return s["mean"], (s["std"] / math.sqrt(s["runs"]) if s["runs"] > 1 else None)


def fid_kind(store: Store, p: Params) -> str:
    """The FID a table shows: "inception FID" or "classifier FID" (``auto`` resolved)."""
    return f"{store.extractor(p.fid, p.dataset).kind} FID"


def fid_score(store: Store, config: TrainConfig | None, p: Params, seed: int,
              source: str) -> tuple[float, float | None]:
    """FID ± bootstrap std of ``p.n_samples`` decoder means g(z), z from ``source`` ("qhat" with
    ``p.components`` components, or "prior"), against as many real test images; ``config`` None
    scores real training images instead (Table 2's "real images" row)."""
    extractor = store.extractor(p.fid, p.dataset)

    def compute():
        real = real_features(extractor, p.dataset, "test", p.n_samples, runtime=store.runtime)
        if config is None:
            images = store.images(p.dataset, "train")[:p.n_samples]
        else:
            images = generate(store.model(config), latent_distribution(store, config, p, seed, source),
                              p.n_samples, seed)
        value, std = fid_with_std(extractor(images), real, p.fid_bootstrap, seed)
        return {"fid": value, "std": std}

    settings = {"features": extractor.key, "n": p.n_samples, "seed": seed, "source": source,
                "bootstrap": p.fid_bootstrap, **({"components": p.components} if source == "qhat" else {})}
    s = store.score(config, "fid" if config is not None else f"fid-real-{p.dataset}", settings, compute)
    return s["fid"], (s["std"] if p.fid_bootstrap > 1 else None)


def heldout_score(store: Store, config: TrainConfig, p: Params, seed: int,
                  components: int) -> tuple[float, float]:
    """q̂'s mean log-likelihood of test-image latents (one z ~ q(z|x) each) ± its standard error:
    it falls once q̂ overfits its fitting points (Table 4)."""
    def compute():
        z = encode_samples(store.model(config), store.images(p.dataset, "test"), seed=seed)
        lp = qhat(store, config, p, seed, components).log_prob(z).double()
        return {"mean": float(lp.mean()), "stderr": float(lp.std()) / math.sqrt(len(lp))}

    h = store.score(config, "heldout", {"components": components, "seed": seed}, compute)
    return h["mean"], h["stderr"]


UNCERTAINTY_IMAGES = 1000  # test images the Figure 3 claim is measured on (the figure shows n_samples)


def uncertainty_score(store: Store, config: TrainConfig, p: Params, seed: int, n_boot: int = 50) -> dict:
    """Figure 3's claim, measured on the σ²(z) of reconstructions of ``UNCERTAINTY_IMAGES`` test
    images so that the pixels tied at the floor cannot carry it: the AUROC of σ² for the 5% of
    pixels with the largest squared error (ties ½) and Spearman's ρ between σ² and the squared
    error over the pixels above the floor (×1.01), each ± a bootstrap over images."""
    def compute():
        model = store.model(config)
        x = store.images(p.dataset, "test")[:UNCERTAINTY_IMAGES]
        with torch.no_grad():
            recon, log_var = model.decode(model.encode(x)[0])
        var = log_var.exp().expand_as(recon).mean(1).flatten(1).double().cpu()  # [N, pixels]
        err = (recon - x).square().mean(1).flatten(1).double().cpu()
        above = var > model.floor * 1.01

        def stats(idx):
            v, e, a = var[idx].flatten(), err[idx].flatten(), above[idx].flatten()
            top = e >= e.quantile(0.95)
            rho = spearman(v[a], e[a]) if a.sum() > 2 else math.nan
            return auroc(v, top), rho

        area, rho = stats(torch.arange(len(x)))
        g = torch.Generator().manual_seed(seed)
        boots = np.array([stats(torch.randint(len(x), (len(x),), generator=g)) for _ in range(n_boot)])
        return {"auroc": area, "auroc_std": float(np.nanstd(boots[:, 0], ddof=1)), "spearman": rho,
                "spearman_std": float(np.nanstd(boots[:, 1], ddof=1)),
                "fraction_at_floor": float(1 - above.double().mean()), "floor": model.floor,
                "sigma2_dataset": model.sigma2, "sigma2_quantiles_1_50_99": var.flatten().float().quantile(
                    torch.tensor([0.01, 0.5, 0.99])).tolist(), "sigma2_min": float(var.min())}

    settings = {"n": UNCERTAINTY_IMAGES, "seed": seed, "bootstrap": n_boot}
    return store.score(config, "uncertainty", settings, compute)
