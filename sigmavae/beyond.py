"""Beyond the paper (issue 22): the probability of the 8-bit pixels, what stage 2 buys, and how
σ is learned in stage 1. Its claims are :mod:`sigmavae.literature`'s, not the paper's."""

from __future__ import annotations

import dataclasses
import math

from . import headlines, literature, paper
from .artefacts import EQUAL_EPOCHS, SIGMA_LEARNING, TABLE3_MODELS, beyond_models
from .cache import Store
from .metrics import bits_per_dim, paired_difference
from .outcomes import Outcome, epochs_of, models_first, per_seed
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
    sigma2_score,
    uncertainty_score,
)

BEYOND_IMAGES = 500  # test images of the likelihoods: Table 3's 500, so its IWAEs are reused
PIXEL, DATASET = "ours, pixel σ²", "ours, dataset σ²"
SCORED = list(dict.fromkeys([*TABLE3_MODELS, EQUAL_EPOCHS, *SIGMA_LEARNING]))  # the models scored
FID_PRIOR = (PIXEL, EQUAL_EPOCHS, DATASET)  # also sampled from the prior: stage 2 and its controls
# per model of SCORED (FID from the prior: FID_PRIOR's), in the order the numbers list them
PER_MODEL = ("continuous", "discrete small", "discrete", "discrete prior", "bpd", "larger k gain",
             "density minus probability", "sigma2", "beats reference", "decoder beats reference", "fid qhat",
             "fid prior")


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
    d = math.prod(store.images(p.dataset, "test").shape[1:])
    est = per_seed(p, lambda seed: _seed(p, store, seed, d))
    collapsed = paper.collapsed(est["beats reference"], p.seeds)  # for the likelihoods
    collapsed_samples = paper.collapsed(est["decoder beats reference"], p.seeds)  # for the FIDs
    claims = [*literature.stage2_claims(est["stage2 density"], est["stage2 discrete"],
                                        {s: est[f"stage2 fid {s}"] for s in ("qhat", "prior")}, collapsed,
                                        collapsed_samples=collapsed_samples),
              *literature.sigma_learning_claims(est["sigma over log sigma"], est["closed over sigma"],
                                                est["fid sigma minus closed"], collapsed,
                                                collapsed_samples=collapsed_samples)]
    checks = _checks(p, est)
    traces = {name: [_sigma2_trace(store, beyond_models(p, s)[name]) for s in p.seeds]
              for name in SIGMA_LEARNING}
    steps = math.ceil(len(store.images(p.dataset, "train")) / beyond_models(p, p.seeds[0])[PIXEL].batch_size)
    lr = beyond_models(p, p.seeds[0])["Adam on σ"].lr
    reach = literature.adam_sigma_bound(lr, steps * p.epochs1)
    bounds = [literature.adam_sigma_bound(lr, steps * e) for e in range(1, p.epochs1 + 1)]
    bounds = {"Adam on σ": [b["sigma"] for b in bounds], "Adam on log σ": [b["log_sigma"] for b in bounds]}
    numbers = {**est, "collapsed": collapsed, "collapsed samples": collapsed_samples,
               "epochs": epochs_of(beyond_models(p, p.seeds[0])), "d": d,
               "sigma2_reach": reach, "steps_per_epoch": steps,
               "literature": literature.MNIST_8BIT if p.dataset == "mnist" else [],
               "rybkin_fid": literature.RYBKIN_MNIST_FID, "fid_kind": fid_kind(store, p)}
    return Outcome("beyond", p, numbers, claims, checks, headlines.beyond(numbers),
                   figures={"sigma2": traces, "sigma2_bounds": bounds}, computed=store.provenance())


def _seed(p: Params, store: Store, seed: int, d: int) -> dict:
    """One seed, in the order the numbers list them: :data:`PER_MODEL` per model, the mean image,
    what stage 2 buys, how σ is learned, and Figures 3-4's measures of ours."""
    configs = beyond_models(p, seed)
    mean_image = _mean_image(store, p, d)
    models, per_image = _likelihoods(p, store, seed, configs, d)
    fid_prior = {name: fid_score(store, configs[name], p, seed, "prior") for name in FID_PRIOR}
    models["fid prior"] = {name: fid_prior[name] for name in SCORED if name in fid_prior}
    stage2 = _stage2(p, store, seed, configs, per_image)
    u = uncertainty_score(store, configs[PIXEL], p, seed)
    sigma = _sigma_learning(p, store, seed, configs, per_image)
    return {**models, "mean image": mean_image, **stage2, **sigma,
            "fraction at floor": (u["fraction_at_floor"], None),
            "uncertainty": {**{k: (u[k], u[f"{k}_std"]) for k in ("auroc", "auroc_over_trivial", "spearman")},
                            "generated_spearman": (u["generated_spearman"], u["generated_spearman_stderr"])}}


def _mean_image(store: Store, p: Params, d: int) -> dict:
    """The mean image (a decoder that ignores z) at its own best σ², exactly, on
    :data:`BEYOND_IMAGES` test images: density, 8-bit probability and its bits per dimension."""
    ip = dataclasses.replace(p, n_samples=BEYOND_IMAGES)
    cont, disc = mean_image_score(store, ip, None), mean_image_discrete_score(store, ip)
    return {"continuous": (cont["mean"], cont["stderr"]), "discrete": (disc["mean"], disc["stderr"]),
            "bpd": (bits_per_dim(disc["mean"], d), disc["stderr"] / (d * math.log(2)))}


def _likelihoods(p: Params, store: Store, seed: int, configs: dict, d: int) -> tuple[dict, dict]:
    """Per model of :data:`SCORED` on :data:`BEYOND_IMAGES` test images: the density (Table 3's
    IWAE) and the 8-bit probability at k = ``p.iwae_k`` and ``p.iwae_k_large``, in nats and bits per
    dimension, and their paired differences; σ², the margin over the mean image (and the decoder
    mean's alone, the check of the FID claims), FID from q̂. Also
    each model's per-image log-likelihoods (with q̂), which the paired comparisons use."""
    ip = dataclasses.replace(p, n_samples=BEYOND_IMAGES)
    out, per_image = {q: {} for q in PER_MODEL if q != "fid prior"}, {}
    for name in SCORED:
        c = configs[name]
        cont = iwae_score(store, c, ip, seed)["qhat"]
        small = discrete_iwae_score(store, c, ip, seed, p.iwae_k)["qhat"]
        large = discrete_iwae_score(store, c, ip, seed, p.iwae_k_large)
        per_image[name] = {"continuous": cont["per_image"], "discrete": large["qhat"]["per_image"]}
        out["continuous"][name] = (cont["mean"], cont["stderr"])
        out["discrete small"][name] = (small["mean"], small["stderr"])
        out["discrete"][name] = (large["qhat"]["mean"], large["qhat"]["stderr"])
        out["discrete prior"][name] = (large["prior"]["mean"], large["prior"]["stderr"])
        out["bpd"][name] = (bits_per_dim(large["qhat"]["mean"], d),
                            large["qhat"]["stderr"] / (d * math.log(2)))
        out["larger k gain"][name] = paired_difference(large["qhat"]["per_image"], small["per_image"])
        out["density minus probability"][name] = paired_difference(cont["per_image"], small["per_image"])
        out["sigma2"][name] = (sigma2_score(store, c), None)
        out["beats reference"][name] = beats_mean_image(store, c, p, seed)
        out["decoder beats reference"][name] = beats_mean_image(store, c, p, seed, samples=True)
        out["fid qhat"][name] = fid_score(store, c, p, seed, "qhat")
    return out, per_image


def _stage2(p: Params, store: Store, seed: int, configs: dict, per_image: dict) -> dict:
    """What stage 2 buys: ours after both stages minus stage 1 alone for as many epochs, paired:
    IWAE (density and 8-bit, image by image) and FID from q̂ and from the prior."""
    ours, control = per_image[PIXEL], per_image[EQUAL_EPOCHS]
    out = {"stage2 density": paired_difference(ours["continuous"], control["continuous"]),
           "stage2 discrete": paired_difference(ours["discrete"], control["discrete"])}
    for source in ("qhat", "prior"):
        out[f"stage2 fid {source}"] = fid_difference(store, seed, (configs[PIXEL], p, source),
                                                     (configs[EQUAL_EPOCHS], p, source))
    return out


def _sigma_learning(p: Params, store: Store, seed: int, configs: dict, per_image: dict) -> dict:
    """How σ is learned in stage 1, paired: Adam on σ over Adam on log σ and Eq. 10 over Adam on σ
    (test IWAE with q̂), and the FID from q̂ of Adam on σ minus Eq. 10's."""
    sigma, _, closed = (configs[n] for n in SIGMA_LEARNING)
    density = {n: per_image[n]["continuous"] for n in SIGMA_LEARNING}
    return {"sigma over log sigma": paired_difference(density["Adam on σ"], density["Adam on log σ"]),
            "closed over sigma": paired_difference(density["Eq. 10 (closed form)"], density["Adam on σ"]),
            "fid sigma minus closed": fid_difference(store, seed, (sigma, p, "qhat"), (closed, p, "qhat"))}


def _checks(p: Params, est: dict) -> list[dict]:
    """What holds by construction: the 8-bit IWAE rises with k, and no probability exceeds 1."""
    gains = est["larger k gain"]
    weakest = min(gains.items(), key=lambda kv: kv[1].mean)
    return [{"text": f"the 8-bit IWAE rises with k (k = {p.iwae_k_large} against k = {p.iwae_k}, every "
                     "model; Burda et al.: in expectation by construction)",
             "passed": all(e.mean > -2 * (e.se or 0) for e in gains.values()),
             "margin": f"{weakest[1].text(2)} nats ({weakest[0]})"},
            {"text": "no 8-bit probability exceeds 1 (every log P ≤ 0)",
             "passed": all(e.mean <= 0 for e in est["discrete"].values())}]


def _sigma2_trace(store: Store, config) -> list[float]:
    """σ² after each training epoch (the run's history; Eq. 10 over the training set where the
    history has it, else the last batch's)."""
    return [h.get("sigma2", math.nan) for h in store.history(config)]
