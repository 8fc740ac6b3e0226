"""Uncertainty: Figures 3 and 4, what the per-pixel σ²(z) of ours after stage 2 (Eq. 11) says
about its reconstructions and its samples, measured by :func:`sigmavae.scores.uncertainty_score`."""

from __future__ import annotations

from . import headlines, paper
from .artefacts import ours_model
from .cache import Store
from .outcomes import Outcome, models_first, per_seed
from .params import Params
from .scores import decoded, uncertainty_score

# the measures with no estimator error: one value per seed
EXACT = ("fraction_at_floor", "floor", "sigma2_dataset", "sigma2_min")


def uncertainty(p: Params, store: Store | None = None) -> Outcome:
    """Figures 3 and 4: reconstructions of test images and samples from q̂, with their σ²(z) maps
    (first seed), and the measured claim (:func:`sigmavae.scores.uncertainty_score`): σ² marks where
    the reconstruction is wrong better than a map that ignores z (the training set's per-pixel
    variance); against chance, checks (:func:`sigmavae.paper.uncertainty_checks`)."""
    if p.epochs2 < 1:
        raise ValueError("the uncertainty figures need stage 2 (per-pixel σ²): epochs2 must be >= 1")
    store = models_first("figure3_4", p, store)
    est = per_seed(p, lambda seed: _seed(p, store, seed))
    checks = [{"text": "σ² never falls below the floor (by construction: the floor is added to the "
                       "variance network's output)",
               "passed": all(m >= f * (1 - 1e-5) for m, f in zip(est["sigma2_min"].values,
                                                                  est["floor"].values, strict=True))},
              *paper.uncertainty_checks(est["auroc"], est["spearman"], est["generated_spearman"])]
    figures = _figures(p, store)
    claims = paper.uncertainty_claims(est["auroc_over_trivial"])
    return Outcome("figure3_4", p, est, claims, checks, headlines.uncertainty(est), figures=figures,
                   computed=store.provenance())


def _seed(p: Params, store: Store, seed: int) -> dict:
    """One seed's measures, each (value, its standard error or None)."""
    s = uncertainty_score(store, ours_model(p, seed)["ours"], p, seed)
    return {"auroc": (s["auroc"], s["auroc_std"]), "spearman": (s["spearman"], s["spearman_std"]),
            **{k: (s[k], None) for k in EXACT},
            "sigma2_p99": (s["sigma2_quantiles_1_50_99"][2], None),
            "auroc_trivial": (s["auroc_trivial"], s["auroc_trivial_std"]),
            "auroc_over_trivial": (s["auroc_over_trivial"], s["auroc_over_trivial_std"]),
            "generated_spearman": (s["generated_spearman"], s["generated_spearman_stderr"]),
            "generated_constant": (s["generated_constant"], None),
            "generated_samples": (s["generated_samples"], None)}


def _figures(p: Params, store: Store) -> dict:
    """First seed: ``n_samples`` test images, their reconstructions from the posterior mean and
    σ²(z) (Figure 3); as many samples from q̂ and their σ²(z) (Figure 4)."""
    config = ours_model(p, p.seeds[0])["ours"]
    t = decoded(store, config, p, p.seeds[0])
    return {"reconstructions": (t["x"], t["recon"], t["sigma2_recon"]),
            "samples": (t["samples"], t["sigma2_samples"])}
