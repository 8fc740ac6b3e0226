"""Presentation: what the notebooks display and publish for each artefact's :class:`Outcome`.

Tables are ``pandas.DataFrame`` s whose cells read "mean ± std" (across seeds; with one seed,
± the estimator's standard error), figures are matplotlib's, and :func:`publish` writes
``results/<artefact>-<dataset>.json`` and glues the values the book's summary pastes (each
Outcome's headline, :mod:`sigmavae.headlines`). Nothing here trains or measures
(:mod:`sigmavae.experiments`) or decides (:mod:`sigmavae.paper`, :mod:`sigmavae.claims`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from . import __version__
from .artefacts import EQUAL_EPOCHS, SIGMA_LEARNING, TABLE2_METHODS, TABLE3_MODELS
from .claims import Estimate
from .fid import choose_fid
from .outcomes import Outcome
from .params import Params
from .plots import (
    latent_density_figure,
    paired_bars_figure,
    sample_grids_figure,
    sigma2_trace_figure,
    sweep_figure,
    uncertainty_figure,
    variance_histogram_figure,
)


def header(p: Params) -> str:
    """The one line a page shows about how it was made."""
    label = p.profile if p.profile != "custom" else "custom (" + "; ".join(p.differences) + ")"
    seeds = f"{len(p.seeds)} seed{'s' if len(p.seeds) > 1 else ''} {list(p.seeds)}"
    return (f"profile {label}: {p.dataset}, latent {p.latent_dim}, epochs1 {p.epochs1} + epochs2 {p.epochs2} "
            f"(each table's 'epochs' column: what each model trained), {seeds}, σ² {p.sigma_update}, "
            f"{choose_fid(p.fid, p.runtime)} FID")


def computed_line(computed: dict) -> str:
    """In words: the precisions that produced a page's models and scores (:class:`Outcome.computed`)."""
    def part(counts: dict) -> str:
        return ", ".join(f"{p} ({n})" for p, n in counts.items()) or "none"

    return (f"precision (sigmavae.precision): models trained in {part(computed.get('trained', {}))}; "
            f"scores computed in {part(computed.get('scored', {}))}")


def spread_note(p: Params) -> str:
    if len(p.seeds) > 1:
        return (f"mean ± std over {len(p.seeds)} seeds, then each seed's value "
                f"(seeds {', '.join(map(str, p.seeds))})")
    return "one seed: ± the estimator's standard error (see the summary page)"


def _cell(e: Estimate | None, digits: int = 2) -> str:
    """"mean ± std (each seed's value)" over several seeds, so that one seed unlike the others (a
    collapse) shows: "547.3 ± 932.3 (8.7, 1623.8, 9.5)"; with one seed "value ± stderr"."""
    if e is None:
        return ""
    if e.n == 1:
        return e.text(digits)
    return f"{e.text(digits)} ({', '.join(f'{v:.{digits}f}' for v in e.values)})"


def _frame(rows: list[dict], index: str):
    """A table of ``rows`` by ``index``; a cell a row has no value for reads "—", not NaN."""
    return pd.DataFrame(rows).set_index(index).fillna("—")


def _collapsed_mark(k: str, n: dict) -> str:
    """" (collapsed)" or " (collapsed at seed 1 of 3)" where ``k`` does not beat the mean image
    (:func:`sigmavae.paper.collapsed`), else ""."""
    gone = n.get("collapsed", ())
    if k not in gone:
        return ""
    where = gone.get(k) if isinstance(gone, dict) else ""
    return f" (collapsed {where})" if where else " (collapsed)"


def _name(m: str, n: dict) -> str:
    """A model's name in a table or figure, marked where it does not beat the mean image."""
    return m + _collapsed_mark(m, n)


def _sigma2_label(k: str, n: dict) -> str:
    label = f"{n['sigma2'][k].text(4)} (learned)" if k == "learned" else k
    return label + _collapsed_mark(k, n)


def _beats(n: dict, m: str) -> str:
    return _cell(n["beats_mean_image"].get(m), 1)


# ----------------------------------------------------------------------------- tables

def table1(o: Outcome):
    """KL(q̂‖p) ± the std over the Monte Carlo runs (the paper's statistic, beside its numbers),
    its standard error (what the rule uses), Section 5.1's fit of q̂ to the aggregate posterior q
    (KL(q‖q̂), KL(q‖p) and the share of it q̂ removes, ± standard errors over their runs), the
    epochs and the collapse check per σ²."""
    n, runs = o.numbers, o.params.kl_runs
    order = sorted(n["sigma2"], key=lambda k: -n["sigma2"][k].mean)

    def kl(k):
        std = n["kl_std_runs"][k]
        return f"{n['kl_qhat_prior'][k].mean:.3f}" + ("" if std is None else f" ± {std:.3f}")

    def paper_kl(k):
        return "{:.3f} ± {:.3f}".format(*n["paper"]["kl"]["0.035" if k == "learned" else k])

    def se(k):
        s = n["kl_qhat_prior"][k].se
        return "" if s is None else f"{s:.4f}"

    fit = n["aggregate_fit"]
    rows = [{"σ²": _sigma2_label(k, n), "epochs": n["epochs"][k], f"KL(q̂‖p) ± std over {runs} runs": kl(k),
             "paper (± std over 10 runs)": paper_kl(k), "standard error (the rule's)": se(k),
             "KL(q‖q̂), q: aggregate posterior": _cell(fit[k]["kl_qhat"], 3),
             "KL(q‖p)": _cell(fit[k]["kl_prior"], 3),
             "share of KL(q‖p) q̂ removes": _cell(fit[k]["closed"], 3),
             "IWAE − mean image (paired)": _beats(n, k)} for k in order]
    return _frame(rows, "σ²")


def table1_figure(o: Outcome):

    return latent_density_figure(o.figures["densities"], o.figures["extent"],
                                 f"Table 1: log densities over the 2-D latent space ({o.params.dataset}, "
                                 f"seed {o.params.seeds[0]})")


def figure1(o: Outcome):
    n, fid = o.numbers, o.numbers["fid_kind"]
    order = sorted(n["sigma2"], key=lambda k: -n["sigma2"][k].mean)
    rows = [{"σ²": _sigma2_label(k, n), "epochs": n["epochs"][k],
             "test ELBO": _cell(n["elbo"][k], 1), f"{fid}, q̂": _cell(n["fid_qhat"][k], 1),
             f"{fid}, prior": _cell(n["fid_prior"][k], 1), "KL(q̂‖p)": _cell(n["kl"][k], 3),
             "IWAE − mean image (paired)": _beats(n, k)} for k in order]
    return _frame(rows, "σ²")


def figure1_figure(o: Outcome):

    n = o.numbers
    panels = {"(a) test ELBO (nats)": {"test ELBO": n["elbo"]},
              f"(b) {n['fid_kind']}": {"from q̂": n["fid_qhat"], "from the prior": n["fid_prior"]},
              "(c) KL(q̂‖p) (nats)": {"KL": n["kl"]}}
    epochs = ", ".join(sorted(set(n["epochs"].values())))
    gone = "; collapsed: " + ", ".join(f"σ² = {k}" for k in n["collapsed"]) if n["collapsed"] else ""
    return sweep_figure(n["sigma2"], panels, f"Figure 1: the σ² sweep ({o.params.dataset}, "
                                             f"{o.params.latent_dim}-d latent, {epochs} epochs; bars: ± 1 "
                                             f"standard error{gone})")


def table2(o: Outcome):
    n, fid = o.numbers, o.numbers["fid_kind"]
    rows = [{"method": _name(m, n), "epochs": n["epochs"][m], f"{fid}, q̂": _cell(n["qhat"][m], 1),
             f"{fid}, prior": _cell(n["prior"][m], 1), "paper (Inception)": n["paper"].get(m, math.nan),
             # the check of claims about samples (outcomes.collapse(samples=True)): what they show
             "IWAE − mean image (paired; ours: its decoder mean at its best σ²)": _beats(n, m)}
            for m in TABLE2_METHODS]
    rows.append({"method": "real images", f"{fid}, q̂": _cell(n["real"], 1), f"{fid}, prior": "",
                 "paper (Inception)": n["paper"].get("real", math.nan)})
    return _frame(rows, "method")


def sample_grids(o: Outcome, title: str):
    """Samples from q̂ beside samples from the prior, per method (Table 2, Figure 2b, appendix D),
    collapsed methods marked; the title ends with the epochs each model trained."""

    grids = {f"{_name(m, o.numbers)}, from {src}": images
             for m, by in o.figures["samples"].items() for src, images in by.items()}
    epochs = o.numbers.get("epochs", {})
    shown = [m for m in epochs if m in o.figures["samples"]]
    if shown:
        title += "; epochs: " + ", ".join(f"{m} {epochs[m]}" for m in shown)
    return sample_grids_figure(grids, title)


def figure2_figure(o: Outcome):

    n = o.numbers
    marked = {src: {_name(m, n): e for m, e in n[src].items()} for src in ("qhat", "prior")}
    return paired_bars_figure({"from q̂": marked["qhat"], "from the prior": marked["prior"]},
                              f"Figure 2a: {n['fid_kind']} from q̂ and from the prior ({o.params.dataset}; "
                              "± 1 standard error)")


def figure2(o: Outcome):
    n = o.numbers
    rows = [{"method": _name(m, n), "epochs": n["epochs"][m], "from q̂": _cell(n["qhat"][m], 1),
             "from the prior": _cell(n["prior"][m], 1), "gain (prior - q̂, paired)": _cell(n["gain"][m], 1)}
            for m in TABLE2_METHODS]
    return _frame(rows, "method")


def table3(o: Outcome):
    """One row per model: IWAE with the prior and q̂, the paper's, σ²; the mean image (a decoder
    that ignores z) at that σ² and whether the model beats it (else: collapsed); for the fixed-σ²
    baselines, their decoder at its own best σ² (calibrated); and a last row, the mean image at its
    own best σ²."""
    n = o.numbers
    rows = []
    for m in TABLE3_MODELS:
        cal = n["calibrated"].get(m)
        rows.append({"model": _name(m, n), "epochs": n["epochs"][m],
                     "IWAE, prior": _cell(n["prior"][m], 1), "IWAE, q̂": _cell(n["qhat"][m], 1),
                     "q̂ - prior (paired)": _cell(n["gain"][m], 2),
                     "paper, prior": n["paper"].get(m, (math.nan,) * 2)[0],
                     "paper, q̂": n["paper"].get(m, (math.nan,) * 2)[1],
                     "σ² (ours: σ²_dataset)": _cell(n["sigma2"][m], 5),
                     "mean image at this σ²": _cell(n["reference"][m], 1),
                     "beats it by (paired)": _cell(n["beats reference"][m], 1),
                     "q̂, at its best σ²": _cell(cal, 1),
                     "its best σ²": _cell(n["calibrated sigma2"].get(m), 5)})
    best = n["reference best"]
    rows.append({"model": "mean image (ignores z), its best σ²", "IWAE, prior": _cell(best, 1),
                 "IWAE, q̂": _cell(best, 1), "σ² (ours: σ²_dataset)": _cell(n["reference sigma2"], 5)})
    return _frame(rows, "model").fillna("")


def table4(o: Outcome):
    n = o.numbers
    rows = [{"components": m, f"{n['fid_kind']}, q̂": _cell(n["fid"][m], 1),
             "held-out log q̂(z) (nats)": _cell(n["heldout"][m], 2), "fit seconds": _cell(n["seconds"][m], 1)}
            for m in n["fid"]]
    rows.append({"components": "prior", f"{n['fid_kind']}, q̂": _cell(n["fid_prior"], 1)})
    return _frame(rows, "components")


def uncertainty(o: Outcome):
    n = o.numbers
    rows = [{"measure": "AUROC of σ² for the top-5% error pixels (chance 0.5)",
             "value": _cell(n["auroc"], 3)},
            {"measure": "AUROC of the training set's per-pixel variance (ignores z), same pixels",
             "value": _cell(n["auroc_trivial"], 3)},
            {"measure": "AUROC of σ² minus that (paired, same image resamples)",
             "value": _cell(n["auroc_over_trivial"], 3)},
            {"measure": "Spearman ρ(σ², squared error), pixels above the floor",
             "value": _cell(n["spearman"], 3)},
            {"measure": "samples from q̂: Spearman ρ(σ², training per-pixel variance), mean over samples",
             "value": _cell(n["generated_spearman"], 3)},
            {"measure": "samples from q̂ with a constant σ² map (no ρ; left out)",
             "value": f"{n['generated_constant'].mean:g} of {n['generated_samples'].mean:g}"},
            {"measure": "fraction of pixels at the floor", "value": _cell(n["fraction_at_floor"], 3)},
            {"measure": "σ²_dataset", "value": _cell(n["sigma2_dataset"], 5)},
            {"measure": "floor (½ σ²_dataset)", "value": _cell(n["floor"], 5)},
            {"measure": "99th percentile of σ²", "value": _cell(n["sigma2_p99"], 4)}]
    return _frame(rows, "measure")


def uncertainty_figures(o: Outcome):

    x, recon, var_r = o.figures["reconstructions"]
    gen, var_g = o.figures["samples"]
    epochs = f"ours, {o.params.epochs1} + {o.params.epochs2} epochs"
    return (uncertainty_figure(x, recon, var_r, f"Figure 3: reconstructions and their σ² ({epochs})"),
            uncertainty_figure(None, gen, var_g, f"Figure 4: samples from q̂ and their σ² ({epochs})",
                               labels=("", "sample", "σ²")))


def section3_4(o: Outcome):
    """Algorithm 1 beside the per-pixel variance learned from the first epoch with no floor: a
    column per model, a row per measure, then the paired differences the claims rest on."""
    n = o.numbers
    rows = [("epochs", lambda m: n["epochs"][m]),
            ("median σ²", lambda m: f"{n['median'][m].mean:.3g}"),
            ("1st / 99th percentile of σ²", lambda m: f"{n['p1'][m].mean:.3g} / {n['p99'][m].mean:.3g}"),
            ("smallest σ²", lambda m: f"{n['min'][m].mean:.3g}"),
            ("share of pixels with σ below one grey level (1/255)",
             lambda m: _cell(n["below grey level"][m], 3)),
            ("share of pixels below ½σ²_dataset", lambda m: _cell(n["below floor"][m], 3)),
            (f"test IWAE with q̂, density (nats, {n['images']} images)", lambda m: _cell(n["density"][m], 1)),
            ("test IWAE with q̂, 8-bit pixels (nats)", lambda m: _cell(n["discrete"][m], 1)),
            (f"{n['fid_kind']}, q̂", lambda m: _cell(n["fid qhat"][m], 1)),
            ("8-bit IWAE (prior) over the mean image (nats)", lambda m: _cell(n["beats reference"][m], 1))]
    models = list(n["median"])
    frame = _frame([{"measure": label, **{m: f(m) for m in models}} for label, f in rows], "measure")
    label = "Algorithm 1 minus the other, paired"
    diffs = _frame([{label: "IWAE, density (nats)", "value": _cell(n["density gain"], 1)},
                    {label: "IWAE, 8-bit pixels (nats)", "value": _cell(n["discrete gain"], 1)},
                    {label: f"{n['fid_kind']}, q̂ (the other's minus Algorithm 1's)",
                     "value": _cell(n["fid gain"], 1)}], label)
    return frame, diffs


def section3_4_figure(o: Outcome):
    f = o.figures
    marks = {"½σ²_dataset (Algorithm 1's floor)": f["floor"],
             "one grey level, (1/255)²": o.numbers["grey_level"] ** 2}
    return variance_histogram_figure(f["histograms"], marks, f"Where σ² lies (seed {o.params.seeds[0]})")


# ----------------------------------------------------------------------------- beyond the paper

def beyond_likelihoods(o: Outcome):
    """Part 1: per model, the test density (Table 3's nats) and the probability of the 8-bit pixels
    (nats at both k, bits per dimension), with q̂; the density minus the probability at the same k
    (≈ d·log 255 where every pixel's σ is much wider than a bin and no pixel sits in an end bin);
    last row, the mean image, exactly."""
    n = o.numbers
    k, k_large = o.params.iwae_k, o.params.iwae_k_large
    rows = [{"model": _name(m, n), "epochs": n["epochs"][m], "σ²": _cell(n["sigma2"][m], 5),
             f"density, nats (k = {k})": _cell(n["continuous"][m], 1),
             f"8-bit, nats (k = {k})": _cell(n["discrete small"][m], 1),
             f"8-bit, nats (k = {k_large})": _cell(n["discrete"][m], 1),
             f"8-bit, prior (k = {k_large})": _cell(n["discrete prior"][m], 1),
             "bits/dim": _cell(n["bpd"][m], 3),
             "density − 8-bit (paired)": _cell(n["density minus probability"][m], 1)}
            for m in [*TABLE3_MODELS, EQUAL_EPOCHS]]
    ref = n["mean image"]
    rows.append({"model": "mean image (ignores z), its best σ²",
                 f"density, nats (k = {k})": _cell(ref["continuous"], 1),
                 f"8-bit, nats (k = {k_large})": _cell(ref["discrete"], 1), "bits/dim": _cell(ref["bpd"], 3)})
    return _frame(rows, "model").fillna("")


def beyond_literature(o: Outcome):
    """Part 1: published 8-bit MNIST likelihoods beside ours (:data:`sigmavae.literature.MNIST_8BIT`)."""
    n = o.numbers
    rows = [{"model": m, "bits/dim": f"{v:.2f}", "source": ref, "what it is": conv}
            for m, v, ref, conv in n["literature"]]
    for m in ("ours, pixel σ²", "ours, dataset σ²"):
        rows.append({"model": f"this page: {_name(m, n)}", "bits/dim": _cell(n["bpd"][m], 3),
                     "source": f"{o.params.epochs1} + {o.params.epochs2} epochs here" if m == "ours, pixel σ²"
                     else f"{o.params.epochs1} epochs here",
                     "what it is": f"IWAE bound (k = {o.params.iwae_k_large}, q̂) on the 8-bit log P(x)"})
    return _frame(rows, "model") if rows else None


def beyond_stage2(o: Outcome):
    """Part 2: ours after both stages against stage 1 alone for as many epochs, and after stage 1."""
    n = o.numbers
    kind = n["fid_kind"]
    rows = [{"model": _name(m, n), "epochs": n["epochs"][m], "σ²": _cell(n["sigma2"][m], 5),
             "IWAE (density), q̂": _cell(n["continuous"][m], 1), "IWAE (8-bit), q̂": _cell(n["discrete"][m], 1),
             f"{kind}, q̂": _cell(n["fid qhat"][m], 2), f"{kind}, prior": _cell(n["fid prior"][m], 2)}
            for m in ("ours, pixel σ²", EQUAL_EPOCHS, "ours, dataset σ²")]
    u = n["uncertainty"]
    rows.append({"model": "ours, pixel σ²: Figures 3-4's measures",
                 "IWAE (density), q̂": f"AUROC {_cell(u['auroc'], 3)} (over the map that ignores z: "
                                       f"{_cell(u['auroc_over_trivial'], 3)})",
                 "IWAE (8-bit), q̂": f"Spearman ρ {_cell(u['spearman'], 3)}; on samples "
                                     f"{_cell(u['generated_spearman'], 3)}",
                 f"{kind}, q̂": f"{_cell(n['fraction at floor'], 2)} of pixels at the floor"})
    return _frame(rows, "model").fillna("")


def beyond_sigma_learning(o: Outcome):
    """Part 3: σ² after stage 1, test IWAE and FID from q̂ for each way of learning σ²."""
    n = o.numbers
    kind = n["fid_kind"]
    reach = {"Adam on σ": n["sigma2_reach"]["sigma"], "Adam on log σ": n["sigma2_reach"]["log_sigma"]}
    rows = [{"σ² learned by": _name(m, n), "epochs": n["epochs"][m],
             "σ² at the end": _cell(n["sigma2"][m], 5),
             "lowest σ² its steps can reach": f"{reach[m]:.4f}" if m in reach else "any (no steps)",
             "IWAE (density), q̂": _cell(n["continuous"][m], 1), "bits/dim (8-bit)": _cell(n["bpd"][m], 3),
             f"{kind}, q̂": _cell(n["fid qhat"][m], 2)} for m in SIGMA_LEARNING]
    return _frame(rows, "σ² learned by")


def beyond_sigma_figure(o: Outcome):
    return sigma2_trace_figure(o.figures["sigma2"], o.figures["sigma2_bounds"], o.numbers["steps_per_epoch"],
                               f"σ² during stage 1 ({o.params.dataset}; dashed: the lowest σ² Adam's "
                               "steps can reach by each epoch)")


# ----------------------------------------------------------------------------- claims, publishing

def claims(o: Outcome):
    """The paper's claims as decided here (the rule: :mod:`sigmavae.claims`), then the checks that
    hold by construction, labelled so; None where there are neither (the appendix's samples), so a
    page shows no empty table."""
    import pandas as pd

    rows = [{"the paper's claim": c.text, "verdict": c.verdict, "margin": c.margin_text()} for c in o.claims]
    rows += [{"the paper's claim": f"check: {c['text']}", "verdict": "passed" if c["passed"] else "FAILED",
              "margin": c.get("margin", "by construction")} for c in o.checks]
    if not rows:
        return None
    # a Styler: its HTML shows every margin whole, where a DataFrame's cuts cells at 50 characters
    return pd.DataFrame(rows).set_index("the paper's claim").style.set_properties(**{"text-align": "left"})


def save_results(o: Outcome, results_dir) -> Path:
    path = Path(results_dir) / f"{o.artefact}-{o.params.dataset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**o.to_json(), "version": __version__}, indent=2, ensure_ascii=False,
                               allow_nan=True) + "\n")
    return path


def publish(o: Outcome, results_dir="results"):
    """The end of every notebook: write the JSON, glue the headline values, the profile line and
    each claim (``claim0_text``, ``claim0`` = verdict, ``claim0_margin``), those that fail
    (``claims_failing``: e.g. the paper's orderings that differ here), those unresolved with a
    margin the other way (``claims_against``) and the claims table as
    HTML (``claims_table``) for the book's summary, and return the claims table to display (None
    where nothing is decided). Without myst-nb (e.g. on Colab) only the JSON is written: there is
    no book to paste into."""
    save_results(o, results_dir)
    print(computed_line(o.computed))
    values = {**o.headline, "profile": header(o.params), "computed": computed_line(o.computed)}
    for i, c in enumerate(o.claims):
        values |= {f"claim{i}_text": c.text, f"claim{i}": c.verdict, f"claim{i}_margin": c.margin_text()}
    values["claims_failing"] = "; ".join(f"{c.text} ({c.margin_text()})" for c in o.claims
                                         if c.verdict == "fails") or "none"
    values["claims_against"] = "; ".join(f"{c.text} ({c.margin_text()})" for c in o.claims  # the other way,
                                         if c.verdict == "unresolved" and c.margin < 0) or "none"  # undecided
    table = claims(o)
    try:
        from IPython.display import HTML
        from myst_nb import glue
    except ImportError:
        pass
    else:
        for key, value in values.items():
            glue(key, value, display=False)
        if table is not None:  # the whole claims table, for the summary page's {glue} directive
            glue("claims_table", HTML(table.set_table_attributes('class="table"').to_html()), display=False)
    return table
