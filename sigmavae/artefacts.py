"""Which models each of the paper's artefacts needs, and its own parameter defaults.

:data:`ARTEFACTS` declares, per artefact, the models it trains for one seed (so ``sigmavae
reproduce --jobs`` trains exactly those up front, :func:`required_configs`), its defaults where the
profile is silent (latent size, sample counts), and whether it computes FIDs. :func:`resolve` is
:func:`sigmavae.params.resolve_params` with an artefact's defaults: what a notebook calls first.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import paper
from .config import TrainConfig
from .params import Params, resolve_params

TABLE2_METHODS = {"ours": "sigma", "VAE": "vae", "β-VAE": "beta-vae", "DIP-VAE": "dip-vae", "WAE": "wae"}
TABLE3_MODELS = {"ours, dataset σ²": ("sigma", {"epochs2": 0}), "ours, pixel σ²": ("sigma", {}),
                 "VAE": ("vae", {}), "β-VAE": ("beta-vae", {}), "DIP-VAE": ("dip-vae", {})}


def sweep_models(p: Params, seed: int) -> dict[str, TrainConfig]:
    """Table 1 / Figure 1: σ² fixed at each of :data:`paper.SWEEP_SIGMA2`, and learned under Eq. 9
    (stage 1 only: one global σ², as in Table 1), all for epochs1 + epochs2 epochs in one stage."""
    epochs = p.epochs1 + p.epochs2
    out = {f"{s2:g}": TrainConfig(dataset=p.dataset, method="fixed", sigma2=s2, latent_dim=p.latent_dim,
                                  epochs1=epochs, epochs2=0, seed=seed) for s2 in paper.SWEEP_SIGMA2}
    out["learned"] = TrainConfig(dataset=p.dataset, method="sigma", sigma_update=p.sigma_update,
                                 latent_dim=p.latent_dim, epochs1=epochs, epochs2=0, seed=seed)
    return out


def table2_models(p: Params, seed: int) -> dict[str, TrainConfig]:
    return {name: p.config(method, seed=seed) for name, method in TABLE2_METHODS.items()}


def table3_models(p: Params, seed: int) -> dict[str, TrainConfig]:
    return {name: p.config(method, seed=seed, **o) for name, (method, o) in TABLE3_MODELS.items()}


def ours_model(p: Params, seed: int) -> dict[str, TrainConfig]:
    return {"ours": p.config("sigma", seed=seed)}


ALGORITHM_1 = "Algorithm 1"  # ours: stage 1 (global σ²), then the per-pixel σ² above ½σ²_dataset
NO_STAGE1 = "σ²(z) from the first epoch, no floor"  # Section 3.4's counterfactual


def section3_4_models(p: Params, seed: int) -> dict[str, TrainConfig]:
    """Section 3.4: ours (Algorithm 1: a global σ² for ``epochs1`` epochs, then the per-pixel
    variance network of Eq. 11 floored at ½σ²_dataset for ``epochs2``), and what the paper says
    Algorithm 1's first stage and floor avoid: the variance network learned from the first epoch,
    no floor, for as many epochs as both stages."""
    return {ALGORITHM_1: p.config("sigma", seed=seed),
            NO_STAGE1: p.config("sigma", seed=seed, epochs1=0, epochs2=p.epochs1 + p.epochs2,
                                variance_floor=0.0)}


# Beyond the paper: how σ² is learned in stage 1 (Algorithm 1: Adam on σ; Adam on log σ; Eq. 10 per
# batch, Rybkin et al.'s "optimal σ"), each for epochs1 epochs.
SIGMA_LEARNING = {"Adam on σ": "sigma", "Adam on log σ": "log_sigma", "Eq. 10 (closed form)": "closed_form"}
EQUAL_EPOCHS = "ours, global σ², equal epochs"  # stage 1 alone for epochs1 + epochs2: stage 2's control


def beyond_models(p: Params, seed: int) -> dict[str, TrainConfig]:
    """Table 3's models, stage 1 alone for as many epochs as both stages (what stage 2 buys), and
    stage 1 under each way of learning σ² (:data:`SIGMA_LEARNING`)."""
    out = table3_models(p, seed)
    out[EQUAL_EPOCHS] = p.config("sigma", seed=seed, epochs1=p.epochs1 + p.epochs2, epochs2=0)
    out |= {name: p.config("sigma", seed=seed, sigma_update=u, epochs2=0)
            for name, u in SIGMA_LEARNING.items()}
    return out


@dataclass(frozen=True)
class Artefact:
    title: str
    models: Callable[[Params, int], dict[str, TrainConfig]]  # label → config, for one seed
    defaults: dict = field(default_factory=dict)  # where the profile is silent
    fid: bool = True  # whether it computes FIDs


ARTEFACTS = {  # in the order `sigmavae reproduce` runs them: the first to need a model trains it
    "table1": Artefact("Table 1: the aggregate posterior against σ²", sweep_models, {"latent_dim": 2}, False),
    "figure1": Artefact("Figure 1: the σ² sweep", sweep_models, {"latent_dim": 2}),
    "table3": Artefact("Table 3: IWAE log-likelihood", table3_models, {"n_samples": 500}, False),
    "table2": Artefact("Table 2: FID of five methods", table2_models),
    "figure2": Artefact("Figure 2: q̂ against the prior", table2_models),
    "table4": Artefact("Table 4: mixture components", ours_model),
    "figure3_4": Artefact("Figures 3-4: uncertainty", ours_model, {"n_samples": 10}, False),
    "section3_4": Artefact("Section 3.4: the per-pixel variance from the first epoch", section3_4_models),
    "appendix": Artefact("Appendix D: samples", table2_models, {"n_samples": 100}, False),
    "beyond": Artefact("Beyond the paper: 8-bit likelihoods, stage 2, learning σ", beyond_models),
}


def resolve(artefact: str, parameters: Mapping | None = None, /, **given) -> Params:
    """The checked parameters of ``artefact`` (:func:`sigmavae.params.resolve_params` with its
    defaults). ``parameters`` may be a notebook's ``globals()``."""
    if artefact not in ARTEFACTS:
        raise ValueError(f"unknown artefact {artefact!r}; choose from {', '.join(ARTEFACTS)}")
    a = ARTEFACTS[artefact]
    return resolve_params(a.defaults, a.fid, parameters, **given)


def models(artefact: str, p: Params) -> list[TrainConfig]:
    """Every model ``artefact`` needs under ``p``, over all its seeds."""
    return [c for s in p.seeds for c in ARTEFACTS[artefact].models(p, s).values()]


def required_configs(artefacts, p_by_artefact: Mapping[str, Params]) -> list[TrainConfig]:
    """Every model the ``artefacts`` will ask the cache for, over all their seeds, once each."""
    configs = [c for a in artefacts for c in models(a, p_by_artefact[a])]
    return list({json.dumps(dataclasses.asdict(c), sort_keys=True): c for c in configs}.values())
