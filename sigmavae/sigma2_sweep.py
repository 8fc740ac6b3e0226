"""The σ² sweep: Table 1 and Figure 1, the models trained with σ² fixed at each of
:data:`sigmavae.paper.SWEEP_SIGMA2` and with σ² learned (:func:`sigmavae.artefacts.sweep_models`).

Named for the concept, the sweep over σ²; not :mod:`sigmavae.sweeps`, which runs many
notebooks as job arrays (``sigmavae reproduce --executor submitit``).
"""

from __future__ import annotations

import math

import torch

from . import headlines, paper
from .artefacts import sweep_models
from .cache import Store
from .outcomes import Outcome, both_sources, collapse, epochs_of, models_first, paired_fids, per_seed
from .params import Params
from .sampling import StandardNormalPrior
from .scores import aggregate_fit_score, densities, elbo_score, fid_kind, fid_score, kl_score, sigma2_score


def table1(p: Params, store: Store | None = None, *, grid_size: int = 100, extent: float = 4.0) -> Outcome:
    """Table 1: KL(q̂‖p) for σ² fixed at each of the sweep's values and learned (Eq. 9), how well
    q̂ approximates the aggregate posterior (Section 5.1: KL(q‖q̂) against KL(q‖p)), and the log
    densities of the aggregate posterior (Eq. 12), of q̂ (Eq. 13) and of p(z) on a grid over
    the 2-D latent space (drawn for the first seed)."""
    if p.latent_dim != 2:
        raise ValueError(f"Table 1 draws densities over a 2-D latent space: latent_dim must be 2, "
                         f"got {p.latent_dim}")
    store = models_first("table1", p, store)

    def one(seed):
        out = {"sigma2": {}, "kl": {}, "aggregate_fit": {}}
        for label, config in sweep_models(p, seed).items():
            out["sigma2"][label] = (sigma2_score(store, config), None)
            out["kl"][label] = kl_score(store, config, p, seed)
            out["aggregate_fit"][label] = aggregate_fit_score(store, config, p, seed)
        return out

    est = per_seed(p, one)
    sigma2, kl, fit = est["sigma2"], est["kl"], est["aggregate_fit"]
    # the paper's ± is the std over its 10 Monte Carlo runs: ours the same (the first seed's)
    kl_std = {k: None if e.stderrs is None else e.stderrs[0] * math.sqrt(p.kl_runs) for k, e in kl.items()}
    beats, collapsed = collapse(p, store, lambda seed: sweep_models(p, seed))
    columns = _densities(p, store, grid_size, extent)
    numbers = {"sigma2": sigma2, "kl_qhat_prior": kl, "kl_std_runs": kl_std, "beats_mean_image": beats,
               "collapsed": collapsed, "aggregate_fit": fit, "epochs": epochs_of(sweep_models(p, p.seeds[0])),
               "paper": {"kl": {f"{k:g}": v for k, v in paper.TABLE1.items()},
                         "sigma2_learned": paper.TABLE1_LEARNED_SIGMA2}}
    claims = [*paper.table1_claims(sigma2, kl, collapsed),
              *paper.aggregate_fit_claims({k: v["closed"] for k, v in fit.items()}, collapsed)]
    return Outcome("table1", p, numbers, claims,
                   headline=headlines.table1(numbers), figures={"densities": columns, "extent": extent},
                   computed=store.provenance())


def _densities(p: Params, store: Store, grid_size: int, extent: float) -> dict:
    """Table 1's columns, first seed, σ² from largest to smallest, then the prior: log q(z) of the
    aggregate posterior (Eq. 12) and log q̂(z) (Eq. 13) on a ``grid_size``² grid over
    [-extent, extent]², y up the rows."""
    axis = torch.linspace(-extent, extent, grid_size)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1)  # [G, G, 2], y up the rows
    columns = {}
    first = sweep_models(p, p.seeds[0])
    for label, config in sorted(first.items(), key=lambda kv: -sigma2_score(store, kv[1])):
        name = f"{sigma2_score(store, config):.3g} (learned)" if label == "learned" else label
        d = densities(store, config, p, p.seeds[0], grid, {"grid_size": grid_size, "extent": extent})
        columns[name] = {"aggregate posterior q(z)": d["aggregate"], "q̂(z), Gaussian mixture": d["qhat"]}
    columns["prior p(z)"] = {"aggregate posterior q(z)": StandardNormalPrior(2).log_prob(grid)}
    return columns


_FIGURE1 = ("sigma2", "elbo", "fid_qhat", "fid_prior", "kl")


def figure1(p: Params, store: Store | None = None) -> Outcome:
    """Figure 1: test ELBO, FID from q̂ and from the prior, and KL(q̂‖p) against σ², for the six
    fixed σ² and the learned one (Table 1's models, q̂ and KL reused from the cache)."""
    store = models_first("figure1", p, store)

    def one(seed):
        out = {q: {} for q in _FIGURE1}
        for label, config in sweep_models(p, seed).items():
            e = elbo_score(store, config, p, seed)
            out["sigma2"][label] = (sigma2_score(store, config), None)
            out["elbo"][label] = (e["elbo"], e["elbo_stderr"])
            out["fid_qhat"][label] = fid_score(store, config, p, seed, "qhat")
            out["fid_prior"][label] = fid_score(store, config, p, seed, "prior")
            out["kl"][label] = kl_score(store, config, p, seed)
        return out

    by = per_seed(p, one)
    beats, collapsed = collapse(p, store, lambda seed: sweep_models(p, seed))
    diff = paired_fids(p, store, both_sources(p, lambda seed: sweep_models(p, seed)))
    claims = paper.figure1_claims(by["elbo"], by["fid_qhat"], diff, collapsed, kl=by["kl"])
    numbers = {**by, "fid_kind": fid_kind(store, p), "beats_mean_image": beats, "collapsed": collapsed,
               "epochs": epochs_of(sweep_models(p, p.seeds[0]))}
    return Outcome("figure1", p, numbers, claims, headline=headlines.figure1(numbers),
                   computed=store.provenance())
