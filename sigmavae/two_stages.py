"""Section 3.4: why Algorithm 1 learns the per-pixel variance in a second stage, above a floor.

The paper: learning the variance network of Eq. 11 from scratch "often gets stuck at predicting
very small variance values". So Algorithm 1 first learns one global σ² (stage 1, Eq. 9), then the
per-pixel σ²(z) floored at ½σ²_dataset (stage 2). Here the model the algorithm avoids is trained
(:data:`sigmavae.artefacts.NO_STAGE1`: the variance network from the first epoch, no floor, for as
many epochs as both stages) and set beside Algorithm 1's, for every seed: where their σ² lies
(:func:`sigmavae.scores.variance_score`), the test IWAE as a density and as the probability of the
8-bit pixels, and the FID of samples from q̂. Decided by :func:`sigmavae.paper.section3_4_claims`.
"""

from __future__ import annotations

import dataclasses

from . import headlines, paper
from .artefacts import ALGORITHM_1, NO_STAGE1, section3_4_models
from .cache import Store
from .metrics import paired_difference
from .outcomes import Outcome, epochs_of, models_first, per_seed
from .params import Params
from .scores import (
    BELOW,
    GREY_LEVEL,
    beats_mean_image,
    discrete_iwae_score,
    fid_difference,
    fid_kind,
    fid_score,
    iwae_score,
    mean_image_discrete_score,
    sigma2_score,
    variance_score,
)

IMAGES = 500  # test images of the likelihoods: Table 3's 500, so Algorithm 1's IWAEs are reused
MODELS = (ALGORITHM_1, NO_STAGE1)


def section3_4(p: Params, store: Store | None = None) -> Outcome:
    """Section 3.4's claim and what follows from it, per seed: Algorithm 1 against the per-pixel
    variance learned from the first epoch with no floor. The collapse check is on the 8-bit
    probability (against the mean image's, exactly), since a density without a floor can beat the
    mean image by shrinking σ² alone."""
    if p.epochs2 < 1:
        raise ValueError("Section 3.4 compares with Algorithm 1's stage 2: epochs2 must be >= 1")
    store = models_first("section3_4", p, store)
    est = per_seed(p, lambda seed: _seed(p, store, seed))
    collapsed = paper.collapsed(est["beats reference"], p.seeds)  # for the likelihoods
    collapsed_samples = paper.collapsed(est["decoder beats reference"], p.seeds)  # for the FIDs
    claims = paper.section3_4_claims(est["below floor"][NO_STAGE1], est["discrete gain"], est["fid gain"],
                                     MODELS, collapsed, collapsed_samples=collapsed_samples)
    above = zip(est["min"][ALGORITHM_1].values, est["floor"].values, strict=True)
    checks = [{"text": "Algorithm 1's σ² never falls below its floor ½σ²_dataset (by construction)",
               "passed": all(m >= f * (1 - BELOW) for m, f in above)}]
    numbers = {**est, "collapsed": collapsed, "collapsed samples": collapsed_samples,
               "epochs": epochs_of(section3_4_models(p, p.seeds[0])),
               "grey_level": GREY_LEVEL, "images": IMAGES, "fid_kind": fid_kind(store, p)}
    histograms = {name: variance_score(store, c, p, p.seeds[0], est["floor"].values[0])
                  for name, c in section3_4_models(p, p.seeds[0]).items()}
    figures = {"histograms": {name: (h["log10_edges"], h["log10_counts"]) for name, h in histograms.items()},
               "floor": est["floor"].values[0]}
    return Outcome("section3_4", p, numbers, claims, checks, headlines.section3_4(numbers), figures=figures,
                   computed=store.provenance())


def _seed(p: Params, store: Store, seed: int) -> dict:
    """One seed: per model, σ²'s percentiles and the shares of pixels below one grey level and
    below Algorithm 1's floor, the IWAE with q̂ (density and 8-bit, k = ``p.iwae_k``) on
    :data:`IMAGES` test images, the FID from q̂, the 8-bit margin over the mean image; then the
    paired differences the claims rest on."""
    configs = section3_4_models(p, seed)
    ours, scratch = configs[ALGORITHM_1], configs[NO_STAGE1]
    floor = ours.variance_floor * sigma2_score(store, ours)
    ip = dataclasses.replace(p, n_samples=IMAGES)
    reference = mean_image_discrete_score(store, ip)["per_image"]
    out = {k: {} for k in ("median", "p1", "p99", "min", "below grey level", "below floor", "density",
                           "discrete", "fid qhat", "beats reference", "decoder beats reference")}
    per_image = {}
    for name, c in configs.items():
        v = variance_score(store, c, p, seed, floor)
        q = v["quantiles_1_10_50_90_99"]
        density = iwae_score(store, c, ip, seed)["qhat"]
        discrete = discrete_iwae_score(store, c, ip, seed, p.iwae_k)
        per_image[name] = (density["per_image"], discrete["qhat"]["per_image"])
        out["median"][name], out["p1"][name], out["p99"][name] = (q[2], None), (q[0], None), (q[4], None)
        out["min"][name] = (v["min"], None)
        out["below grey level"][name] = (v["below_grey_level"]["mean"], v["below_grey_level"]["stderr"])
        out["below floor"][name] = (v["below_floor"]["mean"], v["below_floor"]["stderr"])
        out["density"][name] = (density["mean"], density["stderr"])
        out["discrete"][name] = (discrete["qhat"]["mean"], discrete["qhat"]["stderr"])
        out["fid qhat"][name] = fid_score(store, c, p, seed, "qhat")
        out["beats reference"][name] = paired_difference(discrete["prior"]["per_image"], reference)
        out["decoder beats reference"][name] = beats_mean_image(store, c, p, seed, samples=True)
    return {**out, "floor": (floor, None),
            "density gain": paired_difference(per_image[ALGORITHM_1][0], per_image[NO_STAGE1][0]),
            "discrete gain": paired_difference(per_image[ALGORITHM_1][1], per_image[NO_STAGE1][1]),
            "fid gain": fid_difference(store, seed, (scratch, p, "qhat"), (ours, p, "qhat"))}
