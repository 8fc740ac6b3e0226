"""What every artefact's measurement shares: the :class:`Outcome` it returns, and the few steps
each one takes the same way.

- :func:`models_first`: train the models an artefact needs, over all seeds, before measuring;
- :func:`per_seed`: measure seed by seed and gather each number into an
  :class:`~sigmavae.claims.Estimate` (mean ± std over seeds, each seed's estimator error);
- :func:`collapse`: each model against the mean image, a decoder that ignores z;
- :func:`paired_fids`: FID differences paired seed by seed (:data:`sigmavae.paper.Diff`);
- :func:`epochs`: the epochs a model trains, as the tables label them.

The measurements themselves live by artefact family: :mod:`sigmavae.sigma2_sweep` (Table 1,
Figure 1), :mod:`sigmavae.generation` (Tables 2 and 4, Figure 2, appendix D),
:mod:`sigmavae.log_likelihoods` (Table 3), :mod:`sigmavae.uncertainty` (Figures 3-4),
:mod:`sigmavae.beyond`; :mod:`sigmavae.experiments` gathers them for the notebooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import paper
from .artefacts import models
from .cache import Store
from .claims import Claim, Estimate
from .params import Params
from .scores import beats_mean_image, fid_difference
from .training import stages


@dataclass
class Outcome:
    """What an artefact measured: ``numbers`` (JSON-able, Estimates as mean/std/values/stderr),
    ``claims`` decided, ``checks`` (true by construction, shown as checks), ``headline`` (the
    values the book's summary pastes, :mod:`sigmavae.headlines`), ``figures`` (data to draw, not
    saved) and ``computed``: the precisions its models were trained and its scores computed in
    (:meth:`Store.provenance`)."""

    artefact: str
    params: Params
    numbers: dict
    claims: list[Claim]
    checks: list[dict] = field(default_factory=list)
    headline: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    computed: dict = field(default_factory=dict)  # how: the precisions of its models and scores

    def to_json(self) -> dict:
        return {"artefact": self.artefact, "profile": self.params.profile,
                "differences": list(self.params.differences), "dataset": self.params.dataset,
                "seeds": list(self.params.seeds), "parameters": self.params.to_json(),
                "numbers": jsonable(self.numbers), "claims": [c.to_json() for c in self.claims],
                "checks": self.checks, "headline": self.headline, "computed": self.computed}


def jsonable(x):
    """``x`` with every Estimate as its JSON (mean, std, values, stderr) and every key a string."""
    if isinstance(x, Estimate):
        return x.to_json()
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def models_first(artefact: str, p: Params, store: Store | None = None) -> Store:
    """The store (a new one on ``p.runtime`` if None) once every model ``artefact`` needs is
    trained, over all seeds, before anything is measured (saying which of how many)."""
    store = store or Store(runtime=p.runtime)
    store.train(models(artefact, p))
    return store


def per_seed(p: Params, fn: Callable[[int], dict | tuple]) -> dict | Estimate:
    """Measure seed by seed: ``fn(seed)`` returns nested dicts whose leaves are ``(value, stderr or
    None)``; the result has the same nesting (the first seed's keys, in its order) with, at each
    leaf, the :class:`~sigmavae.claims.Estimate` of the seeds' values, with their standard errors
    when every seed has one. A bare leaf gives a bare Estimate."""
    return _gather([fn(seed) for seed in p.seeds])


def _gather(runs: list):
    if isinstance(runs[0], dict):
        return {key: _gather([run[key] for run in runs]) for key in runs[0]}
    values = [value for value, _ in runs]
    errs = [err for _, err in runs]
    return Estimate(values, None if any(e is None for e in errs) else errs)


def collapse(p: Params, store: Store, configs: Callable[[int], dict], *,
             samples: bool = False) -> tuple[dict, dict[str, str]]:
    """Each model of ``configs(seed)`` ({name: config}) against the mean image
    (:func:`sigmavae.scores.beats_mean_image`; ``samples``: its decoder mean's, the check of claims
    about samples), and those collapsed, each with the seeds where (:func:`sigmavae.paper.collapsed`)."""
    margins = per_seed(p, lambda seed: {n: beats_mean_image(store, c, p, seed, samples=samples)
                                        for n, c in configs(seed).items()})
    return margins, paper.collapsed(margins, p.seeds)


def paired_fids(p: Params, store: Store, spec: Callable[[int], dict]) -> paper.Diff:
    """The paired FID differences (:func:`sigmavae.scores.fid_difference`) between two entries of
    ``spec(seed)`` ({key: (config, params, source)}), seed by seed, as a
    :data:`sigmavae.paper.Diff`: each pair read from the cache when a claim asks for it."""
    specs = {seed: spec(seed) for seed in p.seeds}

    def diff(a, b) -> Estimate:
        return per_seed(p, lambda seed: fid_difference(store, seed, specs[seed][a], specs[seed][b]))

    return diff


def both_sources(p: Params, configs: Callable[[int], dict]) -> Callable[[int], dict]:
    """For :func:`paired_fids`: every model of ``configs(seed)`` sampled from q̂ and from the prior,
    keyed (source, name)."""
    return lambda seed: {(src, n): (c, p, src) for n, c in configs(seed).items() for src in ("qhat", "prior")}


def epochs(config) -> str:
    """The epochs ``config``'s model trains, as a table labels them: "3 + 2" (Algorithm 1's two
    stages), "3" (stage 1 alone), "5" (the other methods: one stage of epochs1 + epochs2)."""
    return " + ".join(str(n) for _, n, _ in stages(config))


def epochs_of(configs: dict) -> dict[str, str]:
    """:func:`epochs` of each of ``configs`` ({name: config})."""
    return {name: epochs(c) for name, c in configs.items()}
