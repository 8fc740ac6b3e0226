"""The measurements: one function per artefact of the paper, what the notebooks call.

Each (:func:`table1` … :func:`appendix_samples`) trains what its artefact needs
(:data:`sigmavae.artefacts.ARTEFACTS`) and measures it seed by seed through a
:class:`sigmavae.cache.Store`, with the scores of :mod:`sigmavae.scores`: each model, q̂ and score is
computed once and then read back, whichever notebook or CLI call asks. They return an
:class:`Outcome`: numbers as :class:`~sigmavae.claims.Estimate` s (mean ± std over seeds, estimator
errors), the paper's claims decided by :mod:`sigmavae.paper`, and the data the figures draw.

A notebook starts with :func:`resolve` (:func:`sigmavae.artefacts.resolve`: its parameters,
checked), then calls its artefact's function here. What they share (the Outcome, measuring seed
by seed, the collapse check, paired FIDs) is :mod:`sigmavae.outcomes`. Presentation (tables,
figures, JSON, the book's glue) is :mod:`sigmavae.reports`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable

from . import literature, paper
from .artefacts import (
    EQUAL_EPOCHS,
    SIGMA_LEARNING,
    TABLE3_MODELS,
    beyond_models,
    resolve,
)
from .cache import Store
from .claims import Estimate
from .generation import appendix_samples, figure2, table2, table4
from .headlines import listed as _listed
from .log_likelihoods import table3
from .metrics import bits_per_dim, paired_difference
from .outcomes import Outcome, models_first
from .outcomes import epochs as _epochs
from .params import Params
from .scores import (
    beats_mean_image,
    discrete_iwae_score,
    fid_difference,
    fid_kind,
    fid_score,
    iwae_score,
    mean_image_discrete_score,
    mean_image_score,
    uncertainty_score,
)
from .sigma2_sweep import figure1, table1
from .uncertainty import uncertainty

__all__ = ["RUNNERS", "Outcome", "appendix_samples", "beyond", "figure1", "figure2", "resolve", "table1",
           "table2", "table3", "table4", "uncertainty"]


# ----------------------------------------------------------------------------- shared

# Flat keys "{quantity} {name}", regrouped by each artefact: on its way out, as the artefacts move
# to sigmavae.outcomes.per_seed (nested results).
def _per_seed(p: Params, fn: Callable[[int], dict]) -> dict:
    """fn(seed) → {name: (value, stderr or None)} for each seed → {name: Estimate}."""
    runs = [fn(s) for s in p.seeds]
    out = {}
    for name in runs[0]:
        values = [r[name][0] for r in runs]
        errs = [r[name][1] for r in runs]
        out[name] = Estimate(values, None if any(e is None for e in errs) else errs)
    return out


# ----------------------------------------------------------------------------- beyond the paper

BEYOND_IMAGES = 500  # test images of the likelihoods: Table 3's 500, so its IWAEs are reused


def beyond(p: Params, store: Store | None = None) -> Outcome:
    """Beyond the paper (issue 22), three questions:

    1. The probability of the 8-bit test pixels (:func:`sigmavae.scores.discrete_iwae_score`: IWAE
       with k = ``p.iwae_k`` and ``p.iwae_k_large``, with the prior and with q̂), in nats and bits per
       dimension, for Table 3's models, stage 1 run as long as both stages, and the mean image
       (exactly), beside the density of Table 3; for the models with one global σ² well above the
       bin width the two differ by about d·log 255 nats
       (:func:`sigmavae.likelihoods.discretized_gaussian_log_prob`).
    2. What stage 2 buys: ours after both stages against stage 1 alone for as many epochs
       (:data:`sigmavae.artefacts.EQUAL_EPOCHS`): IWAE (density and 8-bit), FID from q̂ and from the
       prior, the uncertainty measures of Figures 3-4 (:func:`sigmavae.literature.stage2_claims`).
    3. How σ is learned in stage 1 (:data:`sigmavae.artefacts.SIGMA_LEARNING`): σ² after every
       epoch (the training history), test IWAE and FID from q̂ after ``p.epochs1`` epochs
       (:func:`sigmavae.literature.sigma_learning_claims`), and the bound on how far Adam can move σ.
    """
    if p.epochs2 < 1:
        raise ValueError("what stage 2 buys needs stage 2: epochs2 must be >= 1")
    store = models_first("beyond", p, store)
    ip = dataclasses.replace(p, n_samples=BEYOND_IMAGES)
    d = math.prod(store.images(p.dataset, "test").shape[1:])
    likelihood_models = [*TABLE3_MODELS, EQUAL_EPOCHS]
    scored = list(dict.fromkeys([*likelihood_models, *SIGMA_LEARNING]))
    pixel = "ours, pixel σ²"

    def one(seed):
        configs = beyond_models(p, seed)
        out, per = {}, {}
        for key, ref in (("continuous", mean_image_score(store, ip, None)),
                         ("discrete", mean_image_discrete_score(store, ip))):
            out[f"{key} mean image"] = (ref["mean"], ref["stderr"])
        out["bpd mean image"] = (bits_per_dim(out["discrete mean image"][0], d), out["discrete mean image"][1]
                                 / (d * math.log(2)))
        for name in scored:
            c = configs[name]
            cont = iwae_score(store, c, ip, seed)
            small = discrete_iwae_score(store, c, ip, seed, p.iwae_k)
            large = discrete_iwae_score(store, c, ip, seed, p.iwae_k_large)
            per[name] = {"continuous": cont["qhat"]["per_image"], "discrete": large["qhat"]["per_image"]}
            out[f"continuous {name}"] = (cont["qhat"]["mean"], cont["qhat"]["stderr"])
            out[f"discrete small {name}"] = (small["qhat"]["mean"], small["qhat"]["stderr"])
            out[f"discrete {name}"] = (large["qhat"]["mean"], large["qhat"]["stderr"])
            out[f"discrete prior {name}"] = (large["prior"]["mean"], large["prior"]["stderr"])
            out[f"bpd {name}"] = (bits_per_dim(large["qhat"]["mean"], d),
                                  large["qhat"]["stderr"] / (d * math.log(2)))
            out[f"larger k gain {name}"] = paired_difference(large["qhat"]["per_image"],
                                                             small["qhat"]["per_image"])
            out[f"density minus probability {name}"] = paired_difference(cont["qhat"]["per_image"],
                                                                         small["qhat"]["per_image"])
            out[f"sigma2 {name}"] = (store.model(c).sigma2, None)
            out[f"beats reference {name}"] = beats_mean_image(store, c, p, seed)
            out[f"fid qhat {name}"] = fid_score(store, c, p, seed, "qhat")
        for name in (pixel, EQUAL_EPOCHS, "ours, dataset σ²"):
            out[f"fid prior {name}"] = fid_score(store, configs[name], p, seed, "prior")
        out["stage2 density"] = paired_difference(per[pixel]["continuous"], per[EQUAL_EPOCHS]["continuous"])
        out["stage2 discrete"] = paired_difference(per[pixel]["discrete"], per[EQUAL_EPOCHS]["discrete"])
        for source in ("qhat", "prior"):
            out[f"stage2 fid {source}"] = fid_difference(store, seed, (configs[pixel], p, source),
                                                         (configs[EQUAL_EPOCHS], p, source))
        u = uncertainty_score(store, configs[pixel], p, seed)
        for k in ("auroc", "auroc_over_trivial", "spearman"):
            out[f"uncertainty {k}"] = (u[k], u[f"{k}_std"])
        out["uncertainty generated_spearman"] = (u["generated_spearman"], u["generated_spearman_stderr"])
        out["fraction at floor"] = (u["fraction_at_floor"], None)
        sigma, log_sigma, closed = (configs[n] for n in SIGMA_LEARNING)
        out["sigma over log sigma"] = paired_difference(per["Adam on σ"]["continuous"],
                                                        per["Adam on log σ"]["continuous"])
        out["closed over sigma"] = paired_difference(per["Eq. 10 (closed form)"]["continuous"],
                                                     per["Adam on σ"]["continuous"])
        out["fid sigma minus closed"] = fid_difference(store, seed, (sigma, p, "qhat"), (closed, p, "qhat"))
        return out

    est = _per_seed(p, one)
    by = {q: {n: est[f"{q} {n}"] for n in scored if f"{q} {n}" in est}
          for q in ("continuous", "discrete small", "discrete", "discrete prior", "bpd", "larger k gain",
                    "density minus probability", "sigma2", "beats reference", "fid qhat", "fid prior")}
    collapsed = paper.collapsed(by["beats reference"])
    claims = [*literature.stage2_claims(est["stage2 density"], est["stage2 discrete"],
                                        {s: est[f"stage2 fid {s}"] for s in ("qhat", "prior")}, collapsed),
              *literature.sigma_learning_claims(est["sigma over log sigma"], est["closed over sigma"],
                                                est["fid sigma minus closed"], collapsed)]
    weakest = min(by["larger k gain"].items(), key=lambda kv: kv[1].mean)
    checks = [{"text": f"the 8-bit IWAE rises with k (k = {p.iwae_k_large} against k = {p.iwae_k}, every "
                       "model; Burda et al.: in expectation by construction)",
               "passed": all(e.mean > -2 * (e.se or 0) for e in by["larger k gain"].values()),
               "margin": f"{weakest[1].text(2)} nats ({weakest[0]})"},
              {"text": "no 8-bit probability exceeds 1 (every log P ≤ 0)",
               "passed": all(e.mean <= 0 for e in by["discrete"].values())}]
    traces = {name: [_sigma2_trace(store, beyond_models(p, s)[name]) for s in p.seeds]
              for name in SIGMA_LEARNING}
    steps = math.ceil(len(store.images(p.dataset, "train")) / beyond_models(p, p.seeds[0])[pixel].batch_size)
    config = beyond_models(p, p.seeds[0])["Adam on σ"]
    reach = literature.adam_sigma_bound(config.lr, steps * p.epochs1)
    bounds = [literature.adam_sigma_bound(config.lr, steps * e) for e in range(1, p.epochs1 + 1)]
    bounds = {"Adam on σ": [b["sigma"] for b in bounds], "Adam on log σ": [b["log_sigma"] for b in bounds]}
    headline = {"bpd_pixel": by["bpd"][pixel].text(3), "bpd_dataset": by["bpd"]["ours, dataset σ²"].text(3),
                "bpd_mean_image": est["bpd mean image"].text(3), "d_log_255": d * math.log(255),
                "stage2_density": est["stage2 density"].text(1),
                "stage2_discrete": est["stage2 discrete"].text(1),
                "stage2_fid_qhat": est["stage2 fid qhat"].text(2), "collapsed": _listed(collapsed),
                "sigma_over_log_sigma": est["sigma over log sigma"].text(1),
                "closed_over_sigma": est["closed over sigma"].text(1),
                "reach_sigma2_sigma": reach["sigma"], "reach_sigma2_log_sigma": reach["log_sigma"],
                "steps_per_epoch": steps}
    epochs = {n: _epochs(c) for n, c in beyond_models(p, p.seeds[0]).items()}
    numbers = {**by, "mean image": {k: est[f"{k} mean image"] for k in ("continuous", "discrete", "bpd")},
               **{k: est[k] for k in ("stage2 density", "stage2 discrete", "stage2 fid qhat",
                                      "stage2 fid prior", "sigma over log sigma", "closed over sigma",
                                      "fid sigma minus closed", "fraction at floor")},
               "uncertainty": {k: est[f"uncertainty {k}"] for k in ("auroc", "auroc_over_trivial", "spearman",
                                                                   "generated_spearman")},
               "collapsed": collapsed, "epochs": epochs, "d": d, "sigma2_reach": reach,
               "steps_per_epoch": steps, "literature": literature.MNIST_8BIT if p.dataset == "mnist" else [],
               "rybkin_fid": literature.RYBKIN_MNIST_FID, "fid_kind": fid_kind(store, p)}
    return Outcome("beyond", p, numbers, claims, checks, headline,
                   figures={"sigma2": traces, "sigma2_bounds": bounds},
                   computed=store.provenance())


def _sigma2_trace(store: Store, config) -> list[float]:
    """σ² after each training epoch (the run's history; Eq. 10 over the training set where the
    history has it, else the last batch's)."""
    store.model(config)  # trained
    history = json.loads((store.run_dir(config) / "history.json").read_text())
    return [h.get("sigma2", math.nan) for h in history]


RUNNERS = {"table1": table1, "figure1": figure1, "table2": table2, "table3": table3, "table4": table4,
           "figure2": figure2, "figure3_4": uncertainty, "appendix": appendix_samples, "beyond": beyond}
