"""Generation: the artefacts that sample images and score them by FID. Table 2 (five methods,
from q̂ and from the prior), Figure 2 (q̂ against the prior), Table 4 (q̂'s number of mixture
components) and appendix D (the samples themselves)."""

from __future__ import annotations

import dataclasses

from . import headlines, paper
from .artefacts import TABLE2_METHODS, ours_model, table2_models
from .cache import Store
from .outcomes import Outcome, both_sources, collapse, epochs, epochs_of, models_first, paired_fids, per_seed
from .params import Params
from .scores import fid_difference, fid_kind, fid_score, heldout_score, qhat, samples

# ----------------------------------------------------------------------------- Table 2, Figure 2


def _fid_table(p: Params, store: Store) -> dict:
    """FID from q̂ and from the prior of Table 2's five models, per seed, and of real images."""
    def one(seed):
        out = {"qhat": {}, "prior": {}}
        for name, config in table2_models(p, seed).items():
            out["qhat"][name] = fid_score(store, config, p, seed, "qhat")
            out["prior"][name] = fid_score(store, config, p, seed, "prior")
        out["real"] = fid_score(store, None, p, seed, "real")
        return out

    fids = per_seed(p, one)
    beats, collapsed = collapse(p, store, lambda seed: table2_models(p, seed), samples=True)
    return {**fids, "beats_mean_image": beats, "collapsed": collapsed,
            "epochs": epochs_of(table2_models(p, p.seeds[0]))}


def _protocol_source(name: str) -> str:
    """Where Table 2 samples each method from: q̂, WAE from the prior (appendix D)."""
    return "prior" if name == "WAE" else "qhat"


def table2(p: Params, store: Store | None = None) -> Outcome:
    """Table 2: FID of samples from q̂ and from the prior for the five methods, and of real images.
    The paper's protocol: q̂ where possible, WAE from the prior (appendix D)."""
    store = models_first("table2", p, store)
    fids = _fid_table(p, store)
    protocol = {n: fids[_protocol_source(n)][n] for n in TABLE2_METHODS}
    diff = paired_fids(p, store, lambda seed: {n: (c, p, _protocol_source(n))
                                                for n, c in table2_models(p, seed).items()})
    claims = paper.table2_claims(protocol, diff, p.dataset, fids["collapsed"])
    numbers = {**fids, "protocol": protocol, "fid_kind": fid_kind(store, p),
               "paper": paper.TABLE2.get(p.dataset, {})}
    return Outcome("table2", p, numbers, claims, headline=headlines.table2(numbers),
                   figures={"samples": _sample_grids(p, store, list(TABLE2_METHODS), 64)},
                   computed=store.provenance())


def figure2(p: Params, store: Store | None = None) -> Outcome:
    """Figure 2: (a) FID from q̂ beside FID from the prior for every method (Table 2's scores,
    read from the cache); (b) samples of ours from q̂ and from the prior."""
    store = models_first("figure2", p, store)
    fids = _fid_table(p, store)
    diff = paired_fids(p, store, both_sources(p, lambda seed: table2_models(p, seed)))
    gains = {n: diff(("prior", n), ("qhat", n)) for n in TABLE2_METHODS}
    numbers = {**fids, "gain": gains, "fid_kind": fid_kind(store, p)}
    return Outcome("figure2", p, numbers, paper.figure2_claims(gains, fids["collapsed"]),
                   headline=headlines.figure2(numbers),
                   figures={"samples": _sample_grids(p, store, ["ours"], 64)}, computed=store.provenance())


def _sample_grids(p: Params, store: Store, methods, n: int) -> dict:
    """{method: {"q̂": images, "prior": images}} from the first seed's models."""
    seed, out = p.seeds[0], {}
    for name in methods:
        config = table2_models(p, seed)[name]
        out[name] = {"q̂": samples(store, config, p, seed, n, "qhat"),
                     "prior": samples(store, config, p, seed, n, "prior")}
    return out


# ----------------------------------------------------------------------------- Table 4

def table4(p: Params, store: Store | None = None) -> Outcome:
    """Table 4 (ablation): FID of ours from q̂ against its number of components M, with q̂'s
    held-out log-likelihood on test-image latents (it falls once q̂ overfits) and its fit time.
    The paper's Table 4 is CelebA (M = 500 … 10,000); here any dataset, over ``components_list``."""
    store = store or Store(runtime=p.runtime)
    ms = sorted(p.components_list)
    n_train = len(store.images(p.dataset, "train"))
    if ms[-1] > n_train:  # before any training
        raise ValueError(f"components_list asks for {ms[-1]} components but there are only {n_train} "
                         f"fitting points; use at most {n_train}")
    models_first("table4", p, store)
    reference = min(ms, key=lambda m: abs(m - 32))  # the paper's M for 28×28 data, or the nearest
    by = per_seed(p, lambda seed: _components_seed(p, store, seed, ms, reference))
    beats, collapsed = collapse(p, store, lambda seed: ours_model(p, seed), samples=True)
    claims = paper.table4_claims(by["fid"], by["prior gap"], by["change"], reference, collapsed)
    config = ours_model(p, p.seeds[0])["ours"]
    numbers = {**{q: by[q] for q in ("fid", "heldout", "seconds", "prior gap", "change")},
               "beats_mean_image": beats, "collapsed": collapsed,
               "fid_prior": by["prior"], "fid_kind": fid_kind(store, p), "epochs": {"ours": epochs(config)}}
    grids = _component_samples(p, store, sorted({ms[0], reference, ms[-1]}))
    return Outcome("table4", p, numbers, claims, headline=headlines.table4(numbers, reference),
                   figures={"samples": {"ours": grids}}, computed=store.provenance())


def _components_seed(p: Params, store: Store, seed: int, ms: list[int], reference: int) -> dict:
    """One seed of Table 4: ours from the prior, and for each M: FID from q̂, its gap to the prior
    and its change from the ``reference`` M (paired; 0 ± 0 at the reference), q̂'s held-out
    log-likelihood and fit seconds."""
    config = ours_model(p, seed)["ours"]
    prior = (config, p, "prior")
    ref = (config, dataclasses.replace(p, components=reference), "qhat")
    out = {"prior": fid_score(store, config, p, seed, "prior"), "fid": {}, "heldout": {}, "seconds": {},
           "prior gap": {}, "change": {}}
    for m in ms:
        pm = dataclasses.replace(p, components=m)
        out["fid"][m] = fid_score(store, config, pm, seed, "qhat")
        out["prior gap"][m] = fid_difference(store, seed, prior, (config, pm, "qhat"))
        out["change"][m] = fid_difference(store, seed, (config, pm, "qhat"), ref)
        out["heldout"][m] = heldout_score(store, config, p, seed, m)
        out["seconds"][m] = (qhat(store, config, p, seed, m).fit_seconds, None)
    return out


def _component_samples(p: Params, store: Store, shown: list[int]) -> dict:
    """64 samples of ours (first seed) from q̂ with each of ``shown`` components, and from the prior."""
    seed = p.seeds[0]
    config = ours_model(p, seed)["ours"]
    grids = {f"q̂, M = {m}": samples(store, config, p, seed, 64, "qhat", m) for m in shown}
    grids["prior"] = samples(store, config, p, seed, 64, "prior")
    return grids


# ----------------------------------------------------------------------------- appendix

def appendix_samples(p: Params, store: Store | None = None) -> Outcome:
    """Appendix D, Figures 1-13: ``n_samples`` samples per method from q̂ and from the prior
    (Table 2's models, first seed). No claims: the paper's are about the FIDs of Table 2."""
    store = models_first("appendix", p, store)
    beats, collapsed = collapse(p, store, lambda seed: table2_models(p, seed), samples=True)
    numbers = {"beats_mean_image": beats, "collapsed": collapsed,
               "epochs": epochs_of(table2_models(p, p.seeds[0]))}
    return Outcome("appendix", p, numbers, [], headline=headlines.appendix(numbers),
                   figures={"samples": _sample_grids(p, store, list(TABLE2_METHODS), p.n_samples)},
                   computed=store.provenance())
