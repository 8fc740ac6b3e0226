"""The experiment layer: which models each of the paper's artefacts needs, and what it measures.

- :data:`PROFILES` are the parameter sets the book is made with (``smoke``, ``quick``, ``paper``);
  :func:`resolve` turns a notebook's parameters into one checked :class:`Params`, labelled with the
  profile they equal, or "custom" with the differences listed.
- :data:`ARTEFACTS` declares, per artefact, the models it trains (so ``sigmavae reproduce --jobs``
  trains exactly those up front) and its own defaults (latent size, sample counts).
- One function per artefact (:func:`table1` … :func:`appendix_samples`) measures, seed by seed,
  through a :class:`sigmavae.cache.Store`: each model, q̂ and score is computed once and then
  read back, whichever notebook or CLI call asks. They return an :class:`Outcome`: numbers as
  :class:`~sigmavae.claims.Estimate` s (mean ± std over seeds, estimator errors), the paper's
  claims decided by :mod:`sigmavae.paper`, and the data the figures draw.

Presentation (tables, figures, JSON, the book's glue) is :mod:`sigmavae.reports`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from . import paper
from .cache import Store
from .claims import Claim, Estimate
from .config import SIGMA_UPDATES, TrainConfig
from .data import DATASETS

# ----------------------------------------------------------------------------- parameters

# Each profile sets the parameters it names; the rest keep the paper's values (Params' defaults)
# or the artefact's own (ARTEFACTS[...].defaults).
PROFILES = {
    # Seconds per notebook, the embedded digits (no download): for tests, not for numbers.
    "smoke": {"dataset": "digits", "epochs1": 1, "epochs2": 1, "seeds": [0], "n_samples": 50,
              "iwae_k": 5, "components": 4, "components_list": [2, 4], "kl_runs": 3,
              "fid_bootstrap": 10},
    # Real MNIST, 3 + 2 epochs, for 2 CPU cores in the background (~1 h 40 min for everything):
    # one seed fits that budget, so verdicts rest on estimator errors and say "1 seed". σ² by
    # Eq. 10 per batch: 3 epochs of Adam on σ (Algorithm 1) leave σ² near 0.4.
    "quick": {"dataset": "mnist", "epochs1": 3, "epochs2": 2, "seeds": [0], "sigma_update": "closed_form"},
    # The appendix's settings (B.1; B.2 for CelebA, see DATASET_DEFAULTS), three seeds: for a GPU.
    "paper": {"dataset": "mnist", "seeds": [0, 1, 2], "sigma_update": "sigma"},
}
# Appendix B.2's table for CelebA (code size 256, 75 + 20 epochs) and the Table 4 text (q̂: 500
# components fitted on 50k latents): they replace B.1's where the artefact and profile are silent.
DATASET_DEFAULTS = {"celeba": {"latent_dim": 256, "epochs1": 75, "epochs2": 20, "components": 500,
                               "qhat_points": 50_000}}
# Parameters that do not change a number: left out of the profile label.
RUNTIME = ("device", "data_root", "cache_dir", "results_dir", "fid_weights", "download", "progress")
FID_CHOICES = ("auto", "classifier", "inception")


@dataclass(frozen=True, kw_only=True)
class Params:
    """Every parameter of every artefact, checked once (:func:`resolve`). Defaults: the paper's."""

    dataset: str = "mnist"
    latent_dim: int = 16  # appendix B.1 (Table 1 / Figure 1: 2)
    epochs1: int = 16  # stage 1 (B.1); one-stage methods train epochs1 + epochs2
    epochs2: int = 14  # stage 2 (B.1)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_samples: int = 10_000  # images per FID (Table 3: test images for IWAE, 500)
    iwae_k: int = 20  # Table 3's importance samples
    components: int = 32  # q̂'s mixture components (Table 1: 32)
    components_list: tuple[int, ...] = (8, 16, 32, 64, 128, 256)  # Table 4's M
    fid: str = "auto"  # auto: inception where its weights can be had, else classifier (offline)
    fid_bootstrap: int = 50  # resamples for each FID's std
    sigma_update: str = "sigma"  # ours, stage 1: Adam on σ (Algorithm 1) | closed_form (Eq. 10)
    kl_samples: int = 10_000  # Table 1: KL(q̂‖p) from 10k samples ...
    kl_runs: int = 10  # ... × 10 runs
    qhat_points: int | None = None  # latents q̂ is fitted on (None: one per training image)
    fid_weights: str | None = None
    download: bool | None = None  # let torchvision / pytorch-fid download (None: $SIGMAVAE_DOWNLOAD)
    device: str = "auto"
    data_root: str | None = None
    cache_dir: str | None = None
    progress: bool = True
    profile: str = "paper"  # the label: a profile's name, or "custom"
    differences: tuple[str, ...] = ()  # with "custom": what differs from the profile asked for

    def config(self, method: str, *, seed: int, **overrides) -> TrainConfig:
        """The TrainConfig of one model of a table; one-stage methods train epochs1 + epochs2.
        ``sigma_update`` is passed to ours (method "sigma") only, so the baselines' cache keys do
        not depend on it."""
        extra = {"sigma_update": self.sigma_update} if method == "sigma" else {}
        return TrainConfig(**{"dataset": self.dataset, "method": method, "latent_dim": self.latent_dim,
                              "epochs1": self.epochs1, "epochs2": self.epochs2, "seed": seed, **extra,
                              **overrides})

    def store(self) -> Store:
        return Store(cache_dir=self.cache_dir, device=self.device, data_root=self.data_root,
                     download=self.download, progress=self.progress)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


_INTS = ("latent_dim", "epochs1", "epochs2", "n_samples", "iwae_k", "components", "fid_bootstrap",
         "kl_samples", "kl_runs", "qhat_points")
_CHOICES = {"dataset": DATASETS, "fid": FID_CHOICES, "sigma_update": SIGMA_UPDATES,
            "profile": tuple(PROFILES)}


def _problems(given: Mapping) -> list[str]:
    problems = []
    for name, value in given.items():
        if name in _INTS:
            lowest = 0 if name in ("epochs2", "fid_bootstrap") else 1
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{name} = {value!r} is a {type(value).__name__}, expected int")
            elif value < lowest:
                problems.append(f"{name} = {value} must be >= {lowest}")
        elif name in _CHOICES:
            if value not in _CHOICES[name]:
                problems.append(f"{name} = {value!r} is not one of {', '.join(_CHOICES[name])}")
        elif name in ("seeds", "components_list"):
            ok = isinstance(value, (list, tuple)) and value and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= (0 if name == "seeds" else 1)
                for v in value)
            if not ok:
                problems.append(f"{name} = {value!r} must be a non-empty list of ints "
                                f"{'>= 0' if name == 'seeds' else '>= 1'}, e.g. -p {name} \"[0, 1, 2]\"")
            elif len(set(value)) != len(value):
                problems.append(f"{name} = {value!r} repeats a value")
        elif name in ("fid_weights", "data_root", "cache_dir"):
            if value is not None and not isinstance(value, str):
                problems.append(f"{name} = {value!r} is a {type(value).__name__}, expected str or None")
        elif name == "download" and not isinstance(value, bool):
            problems.append(f"download = {value!r} must be True or False")
        elif name == "device":
            from .training import resolve_device

            try:
                resolve_device(value)
            except ValueError as err:
                problems.append(str(err))
    return problems


def resolve(artefact: str, parameters: Mapping | None = None, /, **given) -> Params:
    """The checked parameters of ``artefact``: ``profile``'s values (default "paper"), then the
    artefact's own defaults where the profile is silent, then every parameter given that is not
    None. ``parameters`` may be a notebook's ``globals()``: names that are not parameters are
    ignored. Bad values stop here, before any compute, naming each parameter and what it accepts.

    The label (``Params.profile``) follows the values used, not the ``profile`` asked for: the name
    of the profile whose values (for this dataset) they equal, else "custom" with the differences
    listed."""
    if artefact not in ARTEFACTS:
        raise ValueError(f"unknown artefact {artefact!r}; choose from {', '.join(ARTEFACTS)}")
    names = {f.name for f in dataclasses.fields(Params)} - {"differences"}
    given = {k: v for k, v in {**(parameters or {}), **given}.items() if k in names and v is not None}
    if "seed" in (parameters or {}) and "seeds" not in given:  # an old single-seed call
        raise ValueError("the parameter is `seeds` (a list), e.g. -p seeds \"[0, 1]\"")
    for name in ("seeds", "components_list"):  # papermill's -p passes "[0, 1]" as a string
        if isinstance(given.get(name), str):
            try:
                given[name] = json.loads(given[name])
            except json.JSONDecodeError:
                pass  # refused below, with the remedy
    problems = _problems(given)
    if problems:
        raise ValueError("bad parameters: " + "; ".join(problems) + ". Pass numbers unquoted "
                         "(`-p epochs1 3`), lists as `-p seeds \"[0, 1]\"`, None as `-p data_root None`; "
                         "the parameters cell says what each one means.")
    asked = given.pop("profile", "paper")

    def values(profile: str, extra: Mapping) -> dict:
        dataset = extra.get("dataset", PROFILES[profile].get("dataset", "mnist"))
        base = {**DATASET_DEFAULTS.get(dataset, {}), **ARTEFACTS[artefact].defaults, **PROFILES[profile],
                **extra}
        return {k: tuple(v) if isinstance(v, list) else v for k, v in base.items()}

    used = values(asked, given)
    dataset, fid = used.get("dataset", "mnist"), used.get("fid", "auto")
    if dataset == "celeba" and ARTEFACTS[artefact].fid:
        from .fid import inception_available

        if fid == "classifier" or (fid == "auto" and not inception_available(
                used.get("fid_weights"), used.get("download"))):
            raise ValueError(
                "CelebA's FID needs Inception features (the offline classifier knows one-channel digits "
                "only), and pytorch-fid's weights are not on this machine: put "
                "pt_inception-2015-12-05-6726825d.pth in torch hub's cache or pass -p fid_weights PATH, "
                "or allow the download with -p download True")
    defaults = {f.name: f.default for f in dataclasses.fields(Params) if f.name in names}
    full = {**defaults, **used}
    label, differences = "custom", ()
    same_data = {"dataset": full["dataset"]}  # a profile is a set of settings for any dataset
    for name in PROFILES:  # the profile these values equal, if any
        candidate = {**defaults, **values(name, same_data)}
        if all(full[k] == candidate[k] for k in names - set(RUNTIME) - {"profile"}):
            label = name
            break
    else:
        reference = {**defaults, **values(asked, same_data)}
        differences = tuple(f"{k} = {full[k]!r} ({asked}: {reference[k]!r})" for k in sorted(names)
                            if k not in RUNTIME and k != "profile" and full[k] != reference[k])
    return Params(**{**full, "profile": label, "differences": differences})


# ----------------------------------------------------------------------------- artefacts

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
    "appendix": Artefact("Appendix D: samples", table2_models, {"n_samples": 100}, False),
}


def required_configs(artefacts, p_by_artefact: Mapping[str, Params]) -> list[TrainConfig]:
    """Every model the ``artefacts`` will ask the cache for, over all their seeds, once each."""
    configs = [c for a in artefacts for s in p_by_artefact[a].seeds
               for c in ARTEFACTS[a].models(p_by_artefact[a], s).values()]
    return list({json.dumps(dataclasses.asdict(c), sort_keys=True): c for c in configs}.values())


# ----------------------------------------------------------------------------- outcomes

@dataclass
class Outcome:
    """What an artefact measured: ``numbers`` (JSON-able, Estimates as mean/std/values/stderr),
    ``claims`` decided, ``checks`` (true by construction, shown as checks), ``headline`` (the
    values the book's summary pastes) and ``figures`` (data to draw, not saved)."""

    artefact: str
    params: Params
    numbers: dict
    claims: list[Claim]
    checks: list[dict] = field(default_factory=list)
    headline: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"artefact": self.artefact, "profile": self.params.profile,
                "differences": list(self.params.differences), "dataset": self.params.dataset,
                "seeds": list(self.params.seeds), "parameters": self.params.to_json(),
                "numbers": _jsonable(self.numbers), "claims": [c.to_json() for c in self.claims],
                "checks": self.checks, "headline": self.headline}


def _jsonable(x):
    if isinstance(x, Estimate):
        return x.to_json()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _models_first(store: Store, artefact: str, p: Params) -> Store:
    """Train the models ``artefact`` needs, over all seeds, before measuring anything (saying which
    of how many), and return the store."""
    store.train([c for s in p.seeds for c in ARTEFACTS[artefact].models(p, s).values()])
    return store


def _per_seed(p: Params, fn: Callable[[int], dict]) -> dict:
    """fn(seed) → {name: (value, stderr or None)} for each seed → {name: Estimate}."""
    runs = [fn(s) for s in p.seeds]
    out = {}
    for name in runs[0]:
        values = [r[name][0] for r in runs]
        errs = [r[name][1] for r in runs]
        out[name] = Estimate(values, None if any(e is None for e in errs) else errs)
    return out


# ----------------------------------------------------------------------------- scores

def kl_score(store: Store, config: TrainConfig, p: Params, seed: int) -> tuple[float, float]:
    """KL(q̂‖p) by Monte Carlo (Table 1: 10k samples × 10 runs): (mean, standard error of it)."""
    from .metrics import kl_divergence_mc
    from .sampling import StandardNormalPrior

    def compute():
        qhat = store.qhat(config, p.components, seed, p.qhat_points)
        mean, std = kl_divergence_mc(qhat, StandardNormalPrior(config.latent_dim), p.kl_samples,
                                     p.kl_runs, seed=seed)
        return {"mean": mean, "std": std, "runs": p.kl_runs}

    s = store.score(config, "kl", {"components": p.components, "seed": seed, "samples": p.kl_samples,
                                   "runs": p.kl_runs}, compute)
    return s["mean"], s["std"] / math.sqrt(s["runs"])


def fid_kind(store: Store, p: Params) -> str:
    """The FID a table shows: "inception FID" or "classifier FID" (``auto`` resolved)."""
    return f"{store.extractor(p.fid, p.dataset, p.fid_weights).kind} FID"


def fid_score(store: Store, config: TrainConfig | None, p: Params, seed: int,
              source: str) -> tuple[float, float]:
    """FID ± bootstrap std of ``p.n_samples`` decoder means g(z), z from ``source`` ("qhat" with
    ``p.components`` components, or "prior"), against as many real test images; ``config`` None
    scores real training images instead (Table 2's "real images" row)."""
    from .fid import fid_with_std, generate, real_features
    from .sampling import StandardNormalPrior

    extractor = store.extractor(p.fid, p.dataset, p.fid_weights)

    def compute():
        real = real_features(extractor, p.dataset, "test", p.n_samples, p.data_root, p.cache_dir)
        if config is None:
            images = store.images(p.dataset, "train")[:p.n_samples]
        else:
            model = store.model(config)
            dist = (store.qhat(config, p.components, seed, p.qhat_points) if source == "qhat"
                    else StandardNormalPrior(config.latent_dim))
            images = generate(model, dist, p.n_samples, seed)
        value, std = fid_with_std(extractor(images), real, p.fid_bootstrap, seed)
        return {"fid": value, "std": std}

    settings = {"features": extractor.key, "n": p.n_samples, "seed": seed, "source": source,
                "bootstrap": p.fid_bootstrap, **({"components": p.components} if source == "qhat" else {})}
    s = store.score(config, "fid" if config is not None else f"fid-real-{p.dataset}", settings, compute)
    return s["fid"], (s["std"] if p.fid_bootstrap > 1 else None)


# ----------------------------------------------------------------------------- Table 1, Figure 1

def table1(p: Params, store: Store | None = None, *, grid_size: int = 100, extent: float = 4.0) -> Outcome:
    """Table 1: KL(q̂‖p) for σ² fixed at each of the sweep's values and learned (Eq. 9), and the
    log densities of the aggregate posterior (Eq. 12), of q̂ (Eq. 13) and of p(z) on a grid over
    the 2-D latent space (drawn for the first seed)."""
    from .sampling import AggregatePosterior, StandardNormalPrior

    if p.latent_dim != 2:
        raise ValueError(f"Table 1 draws densities over a 2-D latent space: latent_dim must be 2, "
                         f"got {p.latent_dim}")
    store = _models_first(store or p.store(), "table1", p)

    def one(seed):
        out = {}
        for label, config in sweep_models(p, seed).items():
            out[f"sigma2 {label}"] = (store.model(config).sigma2, None)
            out[f"kl {label}"] = kl_score(store, config, p, seed)
        return out

    est = _per_seed(p, one)
    labels = list(sweep_models(p, p.seeds[0]))
    sigma2 = {k: est[f"sigma2 {k}"] for k in labels}
    kl = {k: est[f"kl {k}"] for k in labels}
    # the density grids, first seed
    axis = torch.linspace(-extent, extent, grid_size)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1)  # [G, G, 2], y up the rows
    columns = {}
    first = sweep_models(p, p.seeds[0])
    x = store.images(p.dataset, "train")
    for label, config in sorted(first.items(), key=lambda kv: -store.model(kv[1]).sigma2):
        model = store.model(config)
        name = f"{model.sigma2:.3g} (learned)" if label == "learned" else label
        columns[name] = {"aggregate posterior q(z)": AggregatePosterior().fit(model, x).log_prob(grid),
                         "q̂(z), Gaussian mixture":
                             store.qhat(config, p.components, p.seeds[0], p.qhat_points).log_prob(grid)}
    columns["prior p(z)"] = {"aggregate posterior q(z)": StandardNormalPrior(2).log_prob(grid)}
    numbers = {"sigma2": sigma2, "kl_qhat_prior": kl,
               "paper": {"kl": {f"{k:g}": v for k, v in paper.TABLE1.items()},
                         "sigma2_learned": paper.TABLE1_LEARNED_SIGMA2}}
    headline = {"sigma2_learned": sigma2["learned"].mean, "paper_sigma2_learned": paper.TABLE1_LEARNED_SIGMA2,
                "kl_learned": kl["learned"].text(3), "paper_kl_learned": paper.TABLE1[0.035][0],
                "kl_1": kl["1"].text(3), "paper_kl_1": paper.TABLE1[1.0][0],
                "kl_001": kl["0.01"].text(3), "paper_kl_001": paper.TABLE1[0.01][0]}
    return Outcome("table1", p, numbers, paper.table1_claims(sigma2, kl), headline=headline,
                   figures={"densities": columns, "extent": extent})


def figure1(p: Params, store: Store | None = None) -> Outcome:
    """Figure 1: test ELBO, FID from q̂ and from the prior, and KL(q̂‖p) against σ², for the six
    fixed σ² and the learned one (Table 1's models, q̂ and KL reused from the cache)."""
    from .metrics import elbo

    store = _models_first(store or p.store(), "figure1", p)

    def one(seed):
        out = {}
        x_test = store.images(p.dataset, "test")
        for label, config in sweep_models(p, seed).items():
            model = store.model(config)
            e = store.score(config, "elbo", {"n": len(x_test), "seed": seed},
                            lambda m=model: elbo(m, x_test, seed=seed))
            out[f"sigma2 {label}"] = (model.sigma2, None)
            out[f"elbo {label}"] = (e["elbo"], e["elbo_stderr"])
            out[f"fid_qhat {label}"] = fid_score(store, config, p, seed, "qhat")
            out[f"fid_prior {label}"] = fid_score(store, config, p, seed, "prior")
            out[f"kl {label}"] = kl_score(store, config, p, seed)
        return out

    est = _per_seed(p, one)
    labels = list(sweep_models(p, p.seeds[0]))
    by = {q: {k: est[f"{q} {k}"] for k in labels} for q in ("sigma2", "elbo", "fid_qhat", "fid_prior", "kl")}
    claims = paper.figure1_claims(by["elbo"], by["fid_qhat"], by["fid_prior"])
    best = max((k for k in labels if k != "learned"), key=lambda k: by["elbo"][k].mean)
    kind = fid_kind(store, p)
    headline = {"elbo_learned": by["elbo"]["learned"].text(1), "elbo_best_fixed": by["elbo"][best].text(1),
                "elbo_best_fixed_sigma2": best, "fid_qhat_learned": by["fid_qhat"]["learned"].text(1),
                "fid_prior_learned": by["fid_prior"]["learned"].text(1), "fid_kind": kind}
    return Outcome("figure1", p, {**by, "fid_kind": kind}, claims, headline=headline)


# ----------------------------------------------------------------------------- Table 2, Figure 2

def _fid_table(p: Params, store: Store) -> dict:
    """FID from q̂ and from the prior of Table 2's five models, per seed, and of real images."""
    def one(seed):
        out = {}
        for name, config in table2_models(p, seed).items():
            out[f"qhat {name}"] = fid_score(store, config, p, seed, "qhat")
            out[f"prior {name}"] = fid_score(store, config, p, seed, "prior")
        out["real"] = fid_score(store, None, p, seed, "real")
        return out

    est = _per_seed(p, one)
    return {"qhat": {n: est[f"qhat {n}"] for n in TABLE2_METHODS},
            "prior": {n: est[f"prior {n}"] for n in TABLE2_METHODS}, "real": est["real"]}


def table2(p: Params, store: Store | None = None) -> Outcome:
    """Table 2: FID of samples from q̂ and from the prior for the five methods, and of real images.
    The paper's protocol: q̂ where possible, WAE from the prior (appendix D)."""
    store = _models_first(store or p.store(), "table2", p)
    fids = _fid_table(p, store)
    protocol = {n: fids["prior" if n == "WAE" else "qhat"][n] for n in TABLE2_METHODS}
    ref = paper.TABLE2.get(p.dataset, {})
    claims = paper.table2_claims(protocol)
    others = [n for n in TABLE2_METHODS if n != "ours"]
    best = min(others, key=lambda n: protocol[n].mean)
    kind = fid_kind(store, p)
    headline = {"fid_kind": kind, "ours": protocol["ours"].text(1),
                "best_other": protocol[best].text(1),
                "best_other_name": best, "real": fids["real"].text(1),
                "paper_ours": ref.get("ours", float("nan")), "paper_real": ref.get("real", float("nan")),
                "paper_best_other": min((ref[n] for n in others if n in ref), default=float("nan"))}
    return Outcome("table2", p, {**fids, "protocol": protocol, "fid_kind": kind, "paper": ref},
                   claims, headline=headline,
                   figures={"samples": _sample_grids(p, store, list(TABLE2_METHODS), 64)})


def figure2(p: Params, store: Store | None = None) -> Outcome:
    """Figure 2: (a) FID from q̂ beside FID from the prior for every method (Table 2's scores,
    read from the cache); (b) samples of ours from q̂ and from the prior."""
    store = _models_first(store or p.store(), "figure2", p)
    fids = _fid_table(p, store)
    gains = {n: fids["prior"][n] - fids["qhat"][n] for n in TABLE2_METHODS}
    weakest = min(gains, key=lambda n: gains[n].mean)
    kind = fid_kind(store, p)
    headline = {"ours_qhat": fids["qhat"]["ours"].text(1), "ours_prior": fids["prior"]["ours"].text(1),
                "smallest_gap": gains[weakest].text(1), "smallest_gap_method": weakest, "fid_kind": kind}
    return Outcome("figure2", p, {**fids, "gain": gains, "fid_kind": kind},
                   paper.figure2_claims(fids["qhat"], fids["prior"]), headline=headline,
                   figures={"samples": _sample_grids(p, store, ["ours"], 64)})


def _sample_grids(p: Params, store: Store, methods, n: int) -> dict:
    """{method: {"q̂": images, "prior": images}} from the first seed's models."""
    from .fid import generate
    from .sampling import StandardNormalPrior

    seed, out = p.seeds[0], {}
    for name in methods:
        config = table2_models(p, seed)[name]
        model = store.model(config)
        out[name] = {"q̂": generate(model, store.qhat(config, p.components, seed, p.qhat_points), n, seed),
                     "prior": generate(model, StandardNormalPrior(model.latent_dim), n, seed)}
    return out


# ----------------------------------------------------------------------------- Table 3

def iwae_score(store: Store, config: TrainConfig, p: Params, seed: int) -> dict:
    """IWAE (k = ``p.iwae_k``) on the first ``p.n_samples`` test images, with the prior and with
    q̂, from the same importance samples: means, standard errors over images, and the paired gain."""
    from .metrics import iwae_log_likelihoods
    from .sampling import StandardNormalPrior

    def compute():
        model = store.model(config)
        x = store.images(p.dataset, "test")[:p.n_samples]
        priors = {"prior": StandardNormalPrior(model.latent_dim),
                  "qhat": store.qhat(config, p.components, seed, p.qhat_points)}
        ll = iwae_log_likelihoods(model, x, p.iwae_k, priors, seed=seed)
        ll["gain"] = ll["qhat"] - ll["prior"]
        root = math.sqrt(len(x))
        return {k: {"mean": float(v.mean()), "stderr": float(v.std()) / root} for k, v in ll.items()}

    return store.score(config, "iwae", {"n": p.n_samples, "k": p.iwae_k, "components": p.components,
                                        "seed": seed}, compute)


def table3(p: Params, store: Store | None = None) -> Outcome:
    """Table 3: IWAE log-likelihood with the prior and with q̂, ours beside the paper's."""
    store = _models_first(store or p.store(), "table3", p)

    def one(seed):
        out = {}
        for name, config in table3_models(p, seed).items():
            s = iwae_score(store, config, p, seed)
            for k in ("prior", "qhat", "gain"):
                out[f"{k} {name}"] = (s[k]["mean"], s[k]["stderr"])
            out[f"sigma2 {name}"] = (store.model(config).sigma2, None)
        return out

    est = _per_seed(p, one)
    names = list(TABLE3_MODELS)
    by = {q: {n: est[f"{q} {n}"] for n in names} for q in ("prior", "qhat", "gain", "sigma2")}
    ref = paper.TABLE3.get(p.dataset, {})
    headline = {f"{key}_{col}": by[q][name].text(1)
                for key, name in (("pixel", "ours, pixel σ²"), ("dataset", "ours, dataset σ²"),
                                  ("vae", "VAE"))
                for col, q in (("prior", "prior"), ("qhat", "qhat"))}
    headline |= {f"paper_{k}_qhat": ref.get(n, (math.nan, math.nan))[1] for k, n in (
        ("pixel", "ours, pixel σ²"), ("dataset", "ours, dataset σ²"), ("vae", "VAE"))}
    # What Algorithm 1's floor allows: our bound, and the one the paper's own dataset row implies
    d = math.prod(store.images(p.dataset, "test").shape[1:])
    s2 = by["sigma2"]["ours, pixel σ²"].mean
    headline |= {"d": d, "sigma2_dataset": s2, "floor_bound": paper.floor_bound(d, s2 / 2)}
    if ref:
        implied = paper.implied_sigma2(ref["ours, dataset σ²"][1], d)
        headline |= {"paper_implied_sigma2": implied, "paper_floor_bound": paper.floor_bound(d, implied / 2)}
    return Outcome("table3", p, {**by, "paper": ref}, paper.table3_claims(by["qhat"], by["gain"]),
                   headline=headline)


# ----------------------------------------------------------------------------- Table 4

def table4(p: Params, store: Store | None = None) -> Outcome:
    """Table 4 (ablation): FID of ours from q̂ against its number of components M, with q̂'s
    held-out log-likelihood on test-image latents (it falls once q̂ overfits) and its fit time.
    The paper's Table 4 is CelebA (M = 500 … 10,000); here any dataset, over ``components_list``."""
    from .sampling import encode_samples

    store = store or p.store()
    ms = sorted(p.components_list)
    n_train = len(store.images(p.dataset, "train"))
    if ms[-1] > n_train:  # before any training
        raise ValueError(f"components_list asks for {ms[-1]} components but there are only {n_train} "
                         f"fitting points; use at most {n_train}")
    _models_first(store, "table4", p)

    def one(seed):
        config = ours_model(p, seed)["ours"]
        out = {"prior": fid_score(store, config, p, seed, "prior")}
        for m in ms:
            pm = dataclasses.replace(p, components=m)
            out[f"fid {m}"] = fid_score(store, config, pm, seed, "qhat")
            qhat = store.qhat(config, m, seed, p.qhat_points)

            def heldout(qhat=qhat):
                z = encode_samples(store.model(config), store.images(p.dataset, "test"), seed=seed)
                lp = qhat.log_prob(z).double()
                return {"mean": float(lp.mean()), "stderr": float(lp.std()) / math.sqrt(len(lp))}

            h = store.score(config, "heldout", {"components": m, "seed": seed}, heldout)
            out[f"heldout {m}"] = (h["mean"], h["stderr"])
            out[f"seconds {m}"] = (qhat.fit_seconds, None)
        return out

    est = _per_seed(p, one)
    by = {q: {m: est[f"{q} {m}"] for m in ms} for q in ("fid", "heldout", "seconds")}
    reference = min(ms, key=lambda m: abs(m - 32))  # the paper's M for 28×28 data, or the nearest
    claims = paper.table4_claims(by["fid"], est["prior"], reference)
    kind = fid_kind(store, p)
    headline = {"reference_m": reference, "fid_ref": by["fid"][reference].text(1),
                "fid_prior": est["prior"].text(1),
                "fid_largest_m": by["fid"][ms[-1]].text(1), "largest_m": ms[-1],
                "fid_kind": kind,
                "paper_celeba_500": paper.TABLE4[500], "paper_celeba_2000": paper.TABLE4[2000]}
    from .fid import generate
    from .sampling import StandardNormalPrior

    seed = p.seeds[0]
    config = ours_model(p, seed)["ours"]
    model = store.model(config)
    shown = sorted({ms[0], reference, ms[-1]})
    grids = {f"q̂, M = {m}": generate(model, store.qhat(config, m, seed, p.qhat_points), 64, seed)
             for m in shown}
    grids["prior"] = generate(model, StandardNormalPrior(model.latent_dim), 64, seed)
    return Outcome("table4", p, {**by, "fid_prior": est["prior"], "fid_kind": kind}, claims,
                   headline=headline, figures={"samples": {"ours": grids}})


# ----------------------------------------------------------------------------- Figures 3-4

UNCERTAINTY_IMAGES = 1000  # test images the Figure 3 claim is measured on (the figure shows n_samples)


def uncertainty_score(store: Store, config: TrainConfig, p: Params, seed: int, n_boot: int = 50) -> dict:
    """Figure 3's claim, measured on the σ²(z) of reconstructions of ``UNCERTAINTY_IMAGES`` test
    images so that the pixels tied at the floor cannot carry it: the AUROC of σ² for the 5% of
    pixels with the largest squared error (ties ½) and Spearman's ρ between σ² and the squared
    error over the pixels above the floor (×1.01), each ± a bootstrap over images."""
    from .metrics import auroc, spearman

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


def uncertainty(p: Params, store: Store | None = None) -> Outcome:
    """Figures 3 and 4: reconstructions of test images and samples from q̂, with their σ²(z) maps
    (first seed), and the measured claim that σ² marks where the reconstruction is wrong."""
    if p.epochs2 < 1:
        raise ValueError("the uncertainty figures need stage 2 (per-pixel σ²): epochs2 must be >= 1")
    store = _models_first(store or p.store(), "figure3_4", p)

    def one(seed):
        s = uncertainty_score(store, ours_model(p, seed)["ours"], p, seed)
        return {"auroc": (s["auroc"], s["auroc_std"]), "spearman": (s["spearman"], s["spearman_std"]),
                "fraction_at_floor": (s["fraction_at_floor"], None), "floor": (s["floor"], None),
                "sigma2_dataset": (s["sigma2_dataset"], None), "sigma2_min": (s["sigma2_min"], None),
                "sigma2_p99": (s["sigma2_quantiles_1_50_99"][2], None)}

    est = _per_seed(p, one)
    checks = [{"text": "σ² never falls below the floor (by construction: the floor is added to the "
                       "variance network's output)",
               "passed": all(m >= f * (1 - 1e-5) for m, f in zip(est["sigma2_min"].values,
                                                                  est["floor"].values, strict=True))}]
    config = ours_model(p, p.seeds[0])["ours"]
    model = store.model(config)
    x = store.images(p.dataset, "test")[:p.n_samples]
    with torch.no_grad():
        recon, log_var_r = model.decode(model.encode(x)[0])  # from the posterior mean
        z = store.qhat(config, p.components, p.seeds[0], p.qhat_points).sample(p.n_samples, seed=p.seeds[0])
        gen, log_var_g = model.decode(z.to(store.device))
    headline = {"auroc": est["auroc"].text(3), "spearman": est["spearman"].text(3),
                "fraction_at_floor": est["fraction_at_floor"].mean, "floor": est["floor"].mean,
                "sigma2_dataset": est["sigma2_dataset"].mean, "sigma2_p99": est["sigma2_p99"].mean}
    return Outcome("figure3_4", p, est, paper.uncertainty_claims(est["auroc"], est["spearman"]), checks,
                   headline, figures={"reconstructions": (x, recon, log_var_r.exp()),
                                      "samples": (gen, log_var_g.exp())})


# ----------------------------------------------------------------------------- appendix

def appendix_samples(p: Params, store: Store | None = None) -> Outcome:
    """Appendix D, Figures 1-13: ``n_samples`` samples per method from q̂ and from the prior
    (Table 2's models, first seed). No claims: the paper's are about the FIDs of Table 2."""
    store = _models_first(store or p.store(), "appendix", p)
    return Outcome("appendix", p, {}, [], figures={"samples": _sample_grids(p, store, list(TABLE2_METHODS),
                                                                            p.n_samples)})


RUNNERS = {"table1": table1, "figure1": figure1, "table2": table2, "table3": table3, "table4": table4,
           "figure2": figure2, "figure3_4": uncertainty, "appendix": appendix_samples}
