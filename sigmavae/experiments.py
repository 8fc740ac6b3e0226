"""The measurements: one function per artefact of the paper, what the notebooks call.

Each (:func:`table1` … :func:`appendix_samples`) trains what its artefact needs
(:data:`sigmavae.artefacts.ARTEFACTS`) and measures it seed by seed through a
:class:`sigmavae.cache.Store`, with the scores of :mod:`sigmavae.scores`: each model, q̂ and score is
computed once and then read back, whichever notebook or CLI call asks. They return an
:class:`~sigmavae.outcomes.Outcome`: numbers as :class:`~sigmavae.claims.Estimate` s (mean ± std over
seeds, estimator errors), the paper's claims decided by :mod:`sigmavae.paper`, the values the book's
summary pastes (:mod:`sigmavae.headlines`) and the data the figures draw.

This module only gathers them; each lives with its family:

- :mod:`sigmavae.sigma2_sweep`: the σ² sweep, :func:`table1` and :func:`figure1`;
- :mod:`sigmavae.generation`: samples and their FIDs, :func:`table2`, :func:`figure2`, :func:`table4`
  and :func:`appendix_samples`;
- :mod:`sigmavae.log_likelihoods`: :func:`table3`, IWAE and the references that decide it;
- :mod:`sigmavae.uncertainty`: :func:`uncertainty`, Figures 3-4;
- :mod:`sigmavae.two_stages`: :func:`section3_4`, why Algorithm 1 has two stages and a floor;
- :mod:`sigmavae.beyond`: :func:`beyond`, the questions beyond the paper;
- :mod:`sigmavae.outcomes`: what they share (:class:`~sigmavae.outcomes.Outcome`, measuring seed by
  seed, the collapse check, paired FIDs).

A notebook starts with :func:`resolve` (:func:`sigmavae.artefacts.resolve`: its parameters,
checked), then calls its artefact's function here. Presentation (tables, figures, JSON, the book's
glue) is :mod:`sigmavae.reports`.
"""

from __future__ import annotations

from .artefacts import resolve
from .beyond import beyond
from .generation import appendix_samples, figure2, table2, table4
from .log_likelihoods import table3
from .outcomes import Outcome
from .sigma2_sweep import figure1, table1
from .two_stages import section3_4
from .uncertainty import uncertainty

__all__ = ["RUNNERS", "Outcome", "appendix_samples", "beyond", "figure1", "figure2", "resolve",
           "section3_4", "table1", "table2", "table3", "table4", "uncertainty"]

RUNNERS = {"table1": table1, "figure1": figure1, "table2": table2, "table3": table3, "table4": table4,
           "figure2": figure2, "figure3_4": uncertainty, "section3_4": section3_4,
           "appendix": appendix_samples, "beyond": beyond}
