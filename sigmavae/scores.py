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
import dataclasses
import math

import numpy as np
import torch

from .cache import Store
from .config import TrainConfig
from .fid import extractor_identity, fid_bootstrap, generate, paired_std, real_features
from .likelihoods import discretized_gaussian_log_prob, gaussian_log_prob
from .metrics import (
    auroc,
    elbo,
    iwae_log_likelihoods,
    kl_divergence_mc,
    kl_divergences_mc,
    mean_image_log_likelihood,
    paired_difference,
    spearman,
)
from .params import Params
from .sampling import AggregatePosterior, StandardNormalPrior, encode_samples
from .training import dataset_sigma2, stages


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


def samples(store: Store, config: TrainConfig, p: Params, seed: int, n: int, source: str,
            components: int | None = None) -> torch.Tensor:
    """``n`` decoder means g(z), z from ``source`` (q̂ with ``components``, default
    ``p.components``, or the prior), drawn with ``seed``: a sample grid, kept as a figure entry in
    8 bits per pixel, as a picture shows it (a quarter of float32's bytes: the grids are most of
    the evidence store), and returned as floats in [0, 1] read from those 8 bits."""
    m = components or p.components
    settings = {"n": n, "seed": seed, "source": source, "pixels": "uint8",
                **({"components": m} if source == "qhat" else {})}

    def compute():
        dist = qhat(store, config, p, seed, m) if source == "qhat" else StandardNormalPrior(config.latent_dim)
        means = generate(store.model(config), dist, n, seed)  # in (0, 1): the decoder's sigmoid
        return {"images": (means.float().clamp(0, 1) * 255).round().to(torch.uint8)}

    return store.figure(config, "samples", settings, compute)["images"].float() / 255


def decoded(store: Store, config: TrainConfig, p: Params, seed: int) -> dict[str, torch.Tensor]:
    """Figures 3-4's tensors: the first ``p.n_samples`` test images ("x"), their reconstructions
    from the posterior mean and σ²(z) ("recon", "sigma2_recon"), and as many samples from q̂ drawn
    with ``seed`` with their σ²(z) ("samples", "sigma2_samples")."""
    def compute():
        model = store.model(config)
        x = store.images(p.dataset, "test")[:p.n_samples]
        with torch.no_grad():
            recon, log_var_r = model.decode(model.encode(x)[0])  # from the posterior mean
            z = qhat(store, config, p, seed).sample(p.n_samples, seed=seed)
            gen, log_var_g = model.decode(z.to(store.device))
        return {"x": x, "recon": recon, "sigma2_recon": log_var_r.exp(), "samples": gen,
                "sigma2_samples": log_var_g.exp()}

    settings = {"n": p.n_samples, "seed": seed, "components": p.components}
    return store.figure(config, "decoded", settings, compute)


def densities(store: Store, config: TrainConfig, p: Params, seed: int, grid: torch.Tensor,
              settings: dict) -> dict[str, torch.Tensor]:
    """Table 1's picture of one model: log q(z) of the aggregate posterior (Eq. 12) and log q̂(z)
    (Eq. 13) at the points ``grid`` (described by ``settings``)."""
    def compute():
        x = store.images(p.dataset, "train")
        return {"aggregate": AggregatePosterior().fit(store.model(config), x).log_prob(grid),
                "qhat": qhat(store, config, p, seed).log_prob(grid)}

    return store.figure(config, "densities", {**settings, "seed": seed, "components": p.components}, compute)


def elbo_score(store: Store, config: TrainConfig, p: Params, seed: int) -> dict:
    """The single-sample ELBO (Eq. 5) over the whole test set: ``elbo``, ``elbo_stderr``, and its
    two terms ``recon`` and ``kl``."""
    x = store.images(p.dataset, "test")
    return store.score(config, "elbo", {"n": len(x), "seed": seed, "noise": "generator"},
                       lambda: elbo(store.model(config), x, seed=seed))


def _iwae(model, x, p: Params, q, seed: int, k: int | None = None, log_prob=gaussian_log_prob) -> dict:
    """IWAE (k importance samples, default ``p.iwae_k``) with the prior and with ``q`` (q̂) from the
    same importance samples: per image (so that differences between models on the same test images
    are paired), means, standard errors. ``log_prob``: the density (Eq. 8/11) or the 8-bit one."""
    priors = {"prior": StandardNormalPrior(model.latent_dim), "qhat": q}
    ll = iwae_log_likelihoods(model, x, k or p.iwae_k, priors, seed=seed, log_prob=log_prob)
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
    have had; for a per-pixel σ²(z) (Eq. 11) it is its decoder mean's alone, the variance network
    set aside: what its samples show. ``sigma2`` holds σ²_cal."""
    def compute():
        model = copy.deepcopy(store.model(config))
        model.variance = "global"  # a per-pixel σ²(z) set aside: the decoder mean at one σ²
        sigma2 = dataset_sigma2(model, store.images(p.dataset, "train"), seed)
        model.set_sigma2(sigma2)
        x = store.images(p.dataset, "test")[:p.n_samples]
        return {"sigma2": model.sigma2, **_iwae(model, x, p, qhat(store, config, p, seed), seed)}

    return store.score(config, "iwae-calibrated", {"n": p.n_samples, "k": p.iwae_k,
                                                   "components": p.components, "seed": seed}, compute)


def _on_8bit_grid(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to the 256 levels k/255: a no-op for MNIST, Fashion-MNIST and CelebA, whose
    files are 8-bit; the upsampled ``digits`` are not, and are scored as their nearest 8-bit image."""
    return (x * 255).round() / 255


def discrete_iwae_score(store: Store, config: TrainConfig, p: Params, seed: int, k: int) -> dict:
    """:func:`iwae_score` for the probability of the 8-bit pixels rather than their density: the
    decoder's Gaussian integrated over each pixel's bin
    (:func:`sigmavae.likelihoods.discretized_gaussian_log_prob`), k importance samples, on the first
    ``p.n_samples`` test images, with the prior and with q̂; nats per image (bits per dimension:
    :func:`sigmavae.metrics.bits_per_dim`)."""
    def compute():
        x = _on_8bit_grid(store.images(p.dataset, "test")[:p.n_samples])
        return _iwae(store.model(config), x, p, qhat(store, config, p, seed), seed, k,
                     log_prob=discretized_gaussian_log_prob)

    return store.score(config, "iwae-discrete", {"n": p.n_samples, "k": k, "components": p.components,
                                                 "seed": seed, "levels": 256}, compute)


def mean_image_discrete_score(store: Store, p: Params) -> dict:
    """The decoder that ignores z (:func:`mean_image_score`, at its own best σ²) scored on the
    8-bit pixels: Σ_k log P(x_k) under N(m_k, σ²) integrated over each bin, exactly (no z to sample)."""
    def compute():
        best = mean_image_score(store, p, None)
        train = store.images(p.dataset, "train")
        mean = sum(xb.double().sum(0) for xb in train.split(4096)) / (255 * len(train))
        x = _on_8bit_grid(store.images(p.dataset, "test")[:p.n_samples].double().cpu())
        log_var = torch.tensor(math.log(best["sigma2"]), dtype=torch.float64)
        ll = discretized_gaussian_log_prob(x, mean.cpu().expand_as(x), log_var)
        return {"mean": float(ll.mean()), "stderr": float(ll.std()) / math.sqrt(len(ll)),
                "sigma2": best["sigma2"], "per_image": ll.tolist()}

    return store.score(None, f"mean-image-discrete-{p.dataset}", {"n": p.n_samples}, compute)


def mean_image_score(store: Store, p: Params, sigma2: float | None) -> dict:
    """The reference that ignores z (:func:`sigmavae.metrics.mean_image_log_likelihood`) on the
    first ``p.n_samples`` test images, at ``sigma2`` (None: its own best σ², Eq. 10 on the
    training set): its exact log p(x) per image, mean, standard error, and the σ² used; computed
    once per dataset, number of images and σ² (it reads the whole training set)."""
    def compute():
        ll, s2 = mean_image_log_likelihood(store.images(p.dataset, "train"),
                                           store.images(p.dataset, "test")[:p.n_samples], sigma2)
        return {"mean": float(ll.mean()), "stderr": float(ll.std()) / math.sqrt(len(ll)), "sigma2": s2,
                "per_image": ll.tolist()}

    return store.score(None, f"mean-image-{p.dataset}", {"n": p.n_samples, "sigma2": sigma2}, compute)


# Methods whose σ² is the scale of a reconstruction cost, not a likelihood they were trained by:
# WAE's 0.05‖x − g(z)‖² is σ² = 10, where the best decoder beats the mean image by at most
# Σ_k (x_k − m_k)² / 20, a few nats, less than its encoder's KL: their collapse check
# scores their decoder at its own best σ² (calibrated) instead.
COST_SCALE_SIGMA2 = ("wae",)
COLLAPSE_IMAGES = 500  # test images of the collapse check: Table 3's 500, so its IWAE is reused


def sigma2_score(store: Store, config: TrainConfig) -> float:
    """The model's global (or fixed) σ²: after Algorithm 1's stage 1, σ²_dataset. Read once from
    the model, then from the cache or the evidence store without it."""
    return store.score(config, "sigma2", {}, lambda: {"sigma2": store.model(config).sigma2})["sigma2"]


def pixel_variance_of(config: TrainConfig) -> bool:
    """Whether ``config``'s model ends with a per-pixel σ²(z) (Algorithm 1 with a stage 2)."""
    return len(stages(config)) == 2


def beats_mean_image(store: Store, config: TrainConfig, p: Params, seed: int, *,
                     samples: bool = False) -> tuple[float, float]:
    """The collapse check: the model's IWAE (with the prior) minus the exact log p(x) of the mean
    image, a decoder that ignores z (:func:`mean_image_score`), image by image on the first
    :data:`COLLAPSE_IMAGES` test images (k = ``p.iwae_k``): mean and standard error. Both at the
    model's own σ² (a per-pixel σ²: the mean image at its own best σ²; :data:`COST_SCALE_SIGMA2`:
    both at their own best σ², the model's decoder calibrated). A model whose margin does not hold
    learned nothing the mean image lacks: *collapsed* (:func:`sigmavae.paper.collapsed`).

    ``samples``: the check of a claim about samples, which are the decoder's mean g(z). A per-pixel
    σ²(z) (Eq. 11) can beat the mean image by its variance network alone while g(z) ignores z, so
    its decoder mean is scored alone, at its own best global σ² (:func:`calibrated_iwae_score`);
    every other model's likelihood is its decoder mean's already, and its check is the same."""
    p = dataclasses.replace(p, n_samples=COLLAPSE_IMAGES)
    if config.method in COST_SCALE_SIGMA2 or (samples and pixel_variance_of(config)):
        ll = calibrated_iwae_score(store, config, p, seed)["prior"]["per_image"]
        ref = mean_image_score(store, p, None)
    else:
        ll = iwae_score(store, config, p, seed)["prior"]["per_image"]
        ref = mean_image_score(store, p, None if pixel_variance_of(config) else sigma2_score(store, config))
    return paired_difference(ll, ref["per_image"])


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


# Section 5.1's Monte Carlo: z ~ q per estimate × estimates. log q(z) sums over every training image
# (65 s per 10,000 points against MNIST's 60,000 on one 2 GHz core), so fewer than Table 1's 10k × 10.
AGGREGATE_FIT = {"samples": 2000, "runs": 5}


def aggregate_fit_score(store: Store, config: TrainConfig, p: Params, seed: int) -> dict:
    """Section 5.1, "the Gaussian mixture model can effectively approximate the aggregate
    posterior": KL(q‖q̂) and KL(q‖p), q the aggregate posterior (Eq. 12, exact over the training
    images), q̂ its mixture (Eq. 13), both by Monte Carlo from the same z ~ q in each run
    (:data:`AGGREGATE_FIT`), and per run the share of the prior's divergence that q̂ removes,
    1 − KL(q‖q̂) / KL(q‖p). Each as (mean over the runs, its standard error)."""
    def compute():
        q = AggregatePosterior().fit(store.model(config), store.images(p.dataset, "train"))
        targets = {"kl_qhat": qhat(store, config, p, seed),
                   "kl_prior": StandardNormalPrior(config.latent_dim)}
        return kl_divergences_mc(q, targets, AGGREGATE_FIT["samples"], AGGREGATE_FIT["runs"], seed=seed)

    s = store.score(config, "aggregate_fit", {"components": p.components, "seed": seed, **AGGREGATE_FIT},
                    compute)
    runs = {k: np.array(v) for k, v in s.items()}
    runs["closed"] = 1 - runs["kl_qhat"] / runs["kl_prior"]
    return {k: (float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))) for k, v in runs.items()}


def fid_kind(store: Store, p: Params) -> str:
    """The FID a table shows: "inception FID" or "classifier FID" (``auto`` resolved), without
    making the extractor (:func:`sigmavae.fid.extractor_identity`)."""
    return f"{extractor_identity(p.fid, runtime=store.runtime)[0]} FID"


def _fid(store: Store, config: TrainConfig | None, p: Params, seed: int, source: str) -> dict:
    """FID of ``p.n_samples`` decoder means g(z), z from ``source`` ("qhat" with ``p.components``
    components, or "prior"), against as many real test images (``config`` None: real training
    images), with its bootstrap replicates (:func:`sigmavae.fid.fid_bootstrap`, seeded by
    ``seed``: every FID of one seed resamples the same real images, so two are paired)."""
    def compute():
        extractor = store.extractor(p.fid, p.dataset)
        real = real_features(extractor, p.dataset, "test", p.n_samples, runtime=store.runtime)
        if config is None:
            images = store.images(p.dataset, "train")[:p.n_samples]
        else:
            images = generate(store.model(config), latent_distribution(store, config, p, seed, source),
                              p.n_samples, seed)
        value, boots = fid_bootstrap(extractor(images), real, p.fid_bootstrap, seed)
        std = float(np.std(boots, ddof=1)) if len(boots) > 1 else None
        return {"fid": value, "std": std, "replicates": boots.tolist()}

    settings = {"features": extractor_identity(p.fid, runtime=store.runtime)[1], "n": p.n_samples,
                "seed": seed, "source": source, "bootstrap": p.fid_bootstrap, "replicates": True,
                **({"components": p.components} if source == "qhat" else {})}
    return store.score(config, "fid" if config is not None else f"fid-real-{p.dataset}", settings, compute)


def fid_score(store: Store, config: TrainConfig | None, p: Params, seed: int,
              source: str) -> tuple[float, float | None]:
    """FID ± bootstrap std (:func:`_fid`): Table 2's cells; ``config`` None scores real training
    images (its "real images" row)."""
    s = _fid(store, config, p, seed, source)
    return s["fid"], s["std"]


def fid_difference(store: Store, seed: int, a: tuple, b: tuple) -> tuple[float, float | None]:
    """FID_a − FID_b ± the standard error of the paired difference (:func:`sigmavae.fid.paired_std`,
    the same real resamples on both sides: the real set's noise cancels instead of counting
    twice). ``a``, ``b``: (config, params, source) as :func:`fid_score` takes them, one seed."""
    sa, sb = _fid(store, a[0], a[1], seed, a[2]), _fid(store, b[0], b[1], seed, b[2])
    se = paired_std(sa["replicates"], sb["replicates"]) if len(sa["replicates"]) > 1 else None
    return sa["fid"] - sb["fid"], se


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
UNCERTAINTY_SAMPLES = 1000  # samples from q̂ the Figure 4 claim is measured on (likewise)


def pixel_variance(x: torch.Tensor) -> torch.Tensor:
    """The variance of each pixel across the images ``x`` ([N, C, H, W], uint8 or float in [0, 1]),
    averaged over channels as σ² is: [H·W], float64 on the CPU. Over the training set it is the map
    that ignores z against which Figures 3 and 4 judge σ²(z)."""
    def chunks():
        for xb in x.split(4096):
            xb = xb.double().cpu()
            yield xb / 255 if x.dtype == torch.uint8 else xb

    mean = sum(xb.sum(0) for xb in chunks()) / len(x)
    return (sum((xb - mean).square().sum(0) for xb in chunks()) / len(x)).mean(0).flatten()


def uncertainty_score(store: Store, config: TrainConfig, p: Params, seed: int, n_boot: int = 50) -> dict:
    """Figures 3 and 4's claims (§5.4), on the σ²(z) maps of the model.

    Figure 3, on the reconstructions of ``UNCERTAINTY_IMAGES`` test images, so that the pixels tied
    at the floor cannot carry it: the AUROC of σ² for the 5% of pixels with the largest squared
    error (ties ½) and Spearman's ρ between σ² and the squared error over the pixels above the floor
    (×1.01), each ± a bootstrap over images; and the same AUROC of the map that ignores z, the
    training set's per-pixel variance (:func:`pixel_variance`, the same for every image), with the
    paired difference σ² − that map ± its std over the same image resamples (``auroc_over_trivial``).

    Figure 4, on ``UNCERTAINTY_SAMPLES`` samples from q̂: per sample, Spearman's ρ between its σ² map
    and the training set's per-pixel variance ("high where the images vary"), mean ± standard error
    over samples (``generated_spearman``); a sample whose σ² map is constant (e.g. all at the floor)
    has no rank correlation and is left out, counted in ``generated_constant``."""
    def compute():
        model = store.model(config)
        x = store.images(p.dataset, "test")[:UNCERTAINTY_IMAGES]
        trivial = pixel_variance(store.images(p.dataset, "train"))  # [pixels]
        with torch.no_grad():
            recon, log_var = model.decode(model.encode(x)[0])
        var = log_var.exp().expand_as(recon).mean(1).flatten(1).double().cpu()  # [N, pixels]
        err = (recon - x).square().mean(1).flatten(1).double().cpu()
        above = var > model.floor * 1.01

        def stats(idx):
            v, e, a = var[idx].flatten(), err[idx].flatten(), above[idx].flatten()
            top = e >= e.quantile(0.95)
            rho = spearman(v[a], e[a]) if a.sum() > 2 else math.nan
            area, area_trivial = auroc(v, top), auroc(trivial.repeat(len(idx)), top)
            return area, rho, area_trivial, area - area_trivial

        area, rho, area_trivial, over = stats(torch.arange(len(x)))
        g = torch.Generator().manual_seed(seed)
        boots = np.array([stats(torch.randint(len(x), (len(x),), generator=g)) for _ in range(n_boot)])
        std = [float(np.nanstd(boots[:, i], ddof=1)) for i in range(4)]

        z = qhat(store, config, p, seed).sample(UNCERTAINTY_SAMPLES, seed=seed)
        with torch.no_grad():
            gen, log_var_g = model.decode(z.to(store.device))
        var_g = log_var_g.exp().expand_as(gen).mean(1).flatten(1).double().cpu()  # [samples, pixels]
        constant = var_g.amax(1) == var_g.amin(1)
        rhos = torch.tensor([spearman(v, trivial) for v in var_g[~constant]], dtype=torch.float64)
        return {"auroc": area, "auroc_std": std[0], "spearman": rho, "spearman_std": std[1],
                "auroc_trivial": area_trivial, "auroc_trivial_std": std[2],
                "auroc_over_trivial": over, "auroc_over_trivial_std": std[3],
                "generated_spearman": float(rhos.mean()) if len(rhos) else math.nan,
                "generated_spearman_stderr": float(rhos.std()) / math.sqrt(len(rhos))
                if len(rhos) > 1 else math.nan,
                "generated_samples": len(z), "generated_constant": int(constant.sum()),
                "fraction_at_floor": float(1 - above.double().mean()), "floor": model.floor,
                "sigma2_dataset": model.sigma2, "sigma2_quantiles_1_50_99": var.flatten().float().quantile(
                    torch.tensor([0.01, 0.5, 0.99])).tolist(), "sigma2_min": float(var.min())}

    settings = {"n": UNCERTAINTY_IMAGES, "seed": seed, "bootstrap": n_boot, "trivial": "train-variance",
                "samples": UNCERTAINTY_SAMPLES, "components": p.components, "qhat_points": p.qhat_points}
    return store.score(config, "uncertainty", settings, compute)


GREY_LEVEL = 1 / 255  # the 8-bit grid's step: a σ below it claims a precision the data do not have
BELOW = 1e-5  # "below a threshold": by more than this relative margin, float32's rounding of σ² at it
LOG10_RANGE = (-12, 1, 53)  # σ² histogram: log10 edges from, to, how many (¼ decade apart)
LOG10_BINS = torch.linspace(*LOG10_RANGE, dtype=torch.float64)


def variance_score(store: Store, config: TrainConfig, p: Params, seed: int, floor: float) -> dict:
    """Section 3.4: what the per-pixel σ²(z) of ``config``'s model is on the reconstructions
    (posterior mean) of :data:`UNCERTAINTY_IMAGES` test images: the 1st, 10th, 50th, 90th and 99th
    percentiles over all their pixels, the minimum, the histogram of log10 σ² (:data:`LOG10_BINS`,
    values beyond the edges in the end bins), and per image the share of pixels with σ below one
    grey level (:data:`GREY_LEVEL`) and with σ² below ``floor`` (Algorithm 1's ½σ²_dataset), each
    mean ± standard error over images."""
    def compute():
        model = store.model(config)
        x = store.images(p.dataset, "test")[:UNCERTAINTY_IMAGES]
        with torch.no_grad():
            recon, log_var = model.decode(model.encode(x)[0])
        log_var = log_var.expand_as(recon).double().cpu()
        var = log_var.exp().mean(1).flatten(1)  # [N, pixels], as Figure 3 shows it
        log10 = var.log10().clamp(LOG10_BINS[0], LOG10_BINS[-1]).flatten()
        counts = torch.histogram(log10, LOG10_BINS).hist
        root = math.sqrt(len(x))

        def share(below: float) -> dict:  # by more than BELOW
            s = (var < below * (1 - BELOW)).double().mean(1)
            return {"mean": float(s.mean()), "stderr": float(s.std()) / root}

        q = torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99], dtype=torch.float64)
        return {"quantiles_1_10_50_90_99": var.flatten().quantile(q).tolist(), "min": float(var.min()),
                "below_grey_level": share(GREY_LEVEL ** 2), "below_floor": share(floor),
                "log10_edges": LOG10_BINS.tolist(), "log10_counts": counts.tolist()}

    return store.score(config, "variance", {"n": UNCERTAINTY_IMAGES, "floor": floor, "grey_level": GREY_LEVEL,
                                            "below": BELOW, "bins": list(LOG10_RANGE)}, compute)
