"""Table 3: the test log-likelihood of each model (IWAE, with the prior and with q̂), and the
references that decide what it means (issue 19).

Named for what the table reports, models' log-likelihoods log p(x) measured on test images; the
Gaussian likelihood p(x|z) itself (Eq. 8 / 11) is :mod:`sigmavae.likelihoods`. The 8-bit
likelihoods beyond the paper are :mod:`sigmavae.beyond`'s.
"""

from __future__ import annotations

import math

from . import headlines, paper
from .artefacts import table3_models
from .cache import Store
from .metrics import paired_difference
from .outcomes import Outcome, epochs_of, models_first, per_seed
from .params import Params
from .scores import (
    beats_mean_image,
    calibrated_iwae_score,
    iwae_score,
    mean_image_score,
    pixel_variance_of,
    sigma2_score,
)

# per model (Table 3's five): IWAE, σ², the mean image at that σ² and the model's margin over it
PER_MODEL = ("prior", "qhat", "gain", "sigma2", "reference", "beats reference")
# per fixed-σ² baseline: its decoder at its own best σ², and ours (dataset σ²) over it and over the raw one
PER_BASELINE = ("calibrated", "calibrated sigma2", "over calibrated", "over raw")
DATASET = "ours, dataset σ²"


def table3(p: Params, store: Store | None = None) -> Outcome:
    """Table 3: IWAE log-likelihood with the prior and with q̂, ours beside the paper's, with the
    references that decide what the comparisons mean (issue 19): the mean image, a decoder that
    ignores z, scored exactly at each model's σ² and at its own best σ² (a model that does not
    beat it is *collapsed*); and each fixed-σ² baseline's decoder at its own best σ² (Eq. 10 on
    the training set, calibrated), against which "ours (dataset σ²) beats them" can fail."""
    store = models_first("table3", p, store)
    est = per_seed(p, lambda seed: _seed(p, store, seed))
    by = {q: est[q] for q in (*PER_MODEL, *PER_BASELINE, "reference best", "reference sigma2")}
    collapsed = paper.collapsed(by["beats reference"])
    d = math.prod(store.images(p.dataset, "test").shape[1:])
    fixed = paper.BASELINES_FIXED_SIGMA2
    sigma2 = {n: by["sigma2"][n].mean for n in fixed}
    order, bounded = paper.table3_baseline_order(p.dataset, lambda a, b: est["diff"][a, b],
                                                 lambda a, b: est["diff calibrated"][a, b], by["reference"],
                                                 sigma2, d, collapsed)
    claims = [*paper.table3_claims(est["pixel over dataset"], by["over calibrated"], by["gain"], collapsed),
              *order]
    checks = [*paper.table3_checks(by["over raw"], sigma2, d), *bounded]
    numbers = {**by, "collapsed": collapsed, "paper": paper.TABLE3.get(p.dataset, {}),
               "epochs": epochs_of(table3_models(p, p.seeds[0]))}
    return Outcome("table3", p, numbers, claims, checks, headlines.table3(numbers, d),
                   computed=store.provenance())


def _seed(p: Params, store: Store, seed: int) -> dict:
    """One seed of Table 3: :data:`PER_MODEL` per model, :data:`PER_BASELINE` per fixed-σ² baseline,
    the mean image at its own best σ², and the paired differences the claims compare."""
    best = mean_image_score(store, p, None)
    configs = table3_models(p, seed)
    out = {q: {} for q in (*PER_MODEL, *PER_BASELINE)}
    out |= {"reference best": (best["mean"], best["stderr"]), "reference sigma2": (best["sigma2"], None)}
    per_image = {}
    for name, config in configs.items():
        s = iwae_score(store, config, p, seed)
        per_image[name] = s["qhat"]["per_image"]
        for k in ("prior", "qhat", "gain"):
            out[k][name] = (s[k]["mean"], s[k]["stderr"])
        sigma2 = sigma2_score(store, config)
        out["sigma2"][name] = (sigma2, None)
        ref = best if pixel_variance_of(config) else mean_image_score(store, p, sigma2)
        out["reference"][name] = (ref["mean"], ref["stderr"])
        out["beats reference"][name] = beats_mean_image(store, config, p, seed)
    fixed = paper.BASELINES_FIXED_SIGMA2  # the paper's order of the baselines, paired
    out["diff"] = {(a, b): paired_difference(per_image[a], per_image[b])
                   for a in fixed for b in fixed if a != b}
    out["pixel over dataset"] = paired_difference(per_image["ours, pixel σ²"], per_image[DATASET])
    calibrated = {}
    for name in fixed:
        cal = calibrated_iwae_score(store, configs[name], p, seed)
        calibrated[name] = cal["qhat"]["per_image"]
        out["calibrated"][name] = (cal["qhat"]["mean"], cal["qhat"]["stderr"])
        out["calibrated sigma2"][name] = (cal["sigma2"], None)
        out["over calibrated"][name] = paired_difference(per_image[DATASET], cal["qhat"]["per_image"])
        out["over raw"][name] = paired_difference(per_image[DATASET], per_image[name])
    out["diff calibrated"] = {(a, b): paired_difference(calibrated[a], calibrated[b])
                              for a in fixed for b in fixed if a != b}
    return out
