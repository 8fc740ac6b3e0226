"""Each artefact's headline: the values the book's summary pastes (``Outcome.headline``, glued by
:func:`sigmavae.reports.publish` and saved in the results JSON), beside the paper's.

One function per artefact, a pure function of the numbers its measurement returned (Table 3
also takes the pixels per image d, Table 4 the reference M): mostly "mean ± spread" text
(:meth:`sigmavae.claims.Estimate.text`) and the paper's reference numbers (:mod:`sigmavae.paper`).
It sits below the measurements, not in :mod:`sigmavae.reports` (which presents an Outcome, above
them), because an Outcome carries its headline as soon as it is measured: a notebook may print a
headline value before it publishes (the beyond page's d·log 255).
"""

from __future__ import annotations

import math

from . import paper
from .artefacts import TABLE2_METHODS


def listed(names: list[str] | dict[str, str]) -> str:
    """The collapsed models as a page pastes them: "VAE, β-VAE (at seed 1 of 3)" or "none"
    (``names``: :func:`sigmavae.paper.collapsed`'s {model: where}, or a list of models)."""
    where = names if isinstance(names, dict) else {}
    return ", ".join(f"{m} ({where[m]})" if where.get(m) else m for m in names) or "none"


def table1(n: dict) -> dict:
    """Learned σ² and KL(q̂‖p) at σ² learned, 1, 0.05, 0.02 and 0.01, beside Table 1's: ± the std
    over the Monte Carlo runs (the first seed's), the paper's statistic, as the notebook's table."""
    sigma2, kl, std = n["sigma2"], n["kl_qhat_prior"], n["kl_std_runs"]

    def runs(k):
        return f"{kl[k].mean:.3f}" + ("" if std[k] is None else f" ± {std[k]:.3f}")

    return {"sigma2_learned": sigma2["learned"].mean, "paper_sigma2_learned": paper.TABLE1_LEARNED_SIGMA2,
            "kl_learned": runs("learned"), "paper_kl_learned": paper.TABLE1[0.035][0],
            "kl_1": runs("1"), "paper_kl_1": paper.TABLE1[1.0][0],
            "kl_005": runs("0.05"), "paper_kl_005": paper.TABLE1[0.05][0],
            "kl_002": runs("0.02"), "paper_kl_002": paper.TABLE1[0.02][0],
            "kl_001": runs("0.01"), "paper_kl_001": paper.TABLE1[0.01][0],
            "collapsed": listed(n["collapsed"])}


def figure1(n: dict) -> dict:
    """The test ELBO with σ² learned against the best fixed σ², and the learned one's FIDs."""
    elbo = n["elbo"]
    best = max((k for k in elbo if k != "learned"), key=lambda k: elbo[k].mean)
    return {"elbo_learned": elbo["learned"].text(1), "elbo_best_fixed": elbo[best].text(1),
            "elbo_best_fixed_sigma2": best, "fid_qhat_learned": n["fid_qhat"]["learned"].text(1),
            "fid_prior_learned": n["fid_prior"]["learned"].text(1), "fid_kind": n["fid_kind"],
            "collapsed": listed(n["collapsed"])}


def table2(n: dict) -> dict:
    """Ours and the best other method under the paper's protocol, real images, beside Table 2's."""
    protocol, ref = n["protocol"], n["paper"]
    others = [m for m in TABLE2_METHODS if m != "ours"]
    best = min(others, key=lambda m: protocol[m].mean)
    return {"fid_kind": n["fid_kind"], "ours": protocol["ours"].text(1), "best_other": protocol[best].text(1),
            "best_other_name": best, "real": n["real"].text(1),
            "paper_ours": ref.get("ours", float("nan")), "paper_real": ref.get("real", float("nan")),
            "paper_best_other": min((ref[m] for m in others if m in ref), default=float("nan")),
            "collapsed": listed(n["collapsed"])}


def figure2(n: dict) -> dict:
    """Ours from q̂ and from the prior, and the method that gains least from q̂."""
    gain = n["gain"]
    weakest = min(gain, key=lambda m: gain[m].mean)
    return {"ours_qhat": n["qhat"]["ours"].text(1), "ours_prior": n["prior"]["ours"].text(1),
            "smallest_gap": gain[weakest].text(1), "smallest_gap_method": weakest, "fid_kind": n["fid_kind"],
            "collapsed": listed(n["collapsed"])}


_TABLE3_ROWS = (("pixel", "ours, pixel σ²"), ("dataset", "ours, dataset σ²"), ("vae", "VAE"))


def table3(n: dict, d: int) -> dict:
    """IWAE of ours (both σ²) and VAE beside Table 3's; the mean image and VAE at their best σ²;
    what Algorithm 1's floor allows with ``d`` pixels per image (:func:`sigmavae.paper.floor_bound`),
    ours and the one the paper's own dataset row implies."""
    ref = n["paper"]
    out = {f"{key}_{col}": n[col][name].text(1) for key, name in _TABLE3_ROWS for col in ("prior", "qhat")}
    out |= {f"paper_{key}_qhat": ref.get(name, (math.nan, math.nan))[1] for key, name in _TABLE3_ROWS}
    out |= {"collapsed": listed(n["collapsed"]), "reference_best": n["reference best"].text(1),
            "reference_sigma2": n["reference sigma2"].mean,
            "vae_calibrated": n["calibrated"]["VAE"].text(1),
            "vae_calibrated_sigma2": n["calibrated sigma2"]["VAE"].mean}
    s2 = n["sigma2"]["ours, pixel σ²"].mean
    out |= {"d": d, "sigma2_dataset": s2, "floor_bound": paper.floor_bound(d, s2 / 2),
            "bound_vae": paper.floor_bound(d, n["sigma2"]["VAE"].mean),
            "bound_beta_vae": paper.floor_bound(d, n["sigma2"]["β-VAE"].mean),
            "dataset_over_raw": min(n["over raw"].values(), key=lambda e: e.mean).text(1)}
    if ref:
        implied = paper.implied_sigma2(ref["ours, dataset σ²"][1], d)
        out |= {"paper_implied_sigma2": implied, "paper_floor_bound": paper.floor_bound(d, implied / 2)}
    return out


def table4(n: dict, reference: int) -> dict:
    """FID from q̂ at the ``reference`` M and the largest, from the prior, beside Table 4's CelebA."""
    fid, largest = n["fid"], list(n["fid"])[-1]
    return {"reference_m": reference, "fid_ref": fid[reference].text(1),
            "threshold_percent": 100 * paper.TABLE4_THRESHOLD, "fid_prior": n["fid_prior"].text(1),
            "fid_largest_m": fid[largest].text(1), "largest_m": largest, "fid_kind": n["fid_kind"],
            "paper_celeba_500": paper.TABLE4[500], "paper_celeba_2000": paper.TABLE4[2000]}


def uncertainty(n: dict) -> dict:
    """Figures 3-4's measures: AUROC and Spearman ρ, the floor, σ² on samples."""
    return {"auroc": n["auroc"].text(3), "spearman": n["spearman"].text(3),
            "fraction_at_floor": n["fraction_at_floor"].mean, "floor": n["floor"].mean,
            "sigma2_dataset": n["sigma2_dataset"].mean, "sigma2_p99": n["sigma2_p99"].mean,
            "auroc_trivial": n["auroc_trivial"].text(3),
            "auroc_over_trivial": n["auroc_over_trivial"].text(3),
            "generated_spearman": n["generated_spearman"].text(3),
            "generated_constant": n["generated_constant"].mean,
            "generated_samples": n["generated_samples"].mean}


def section3_4(n: dict) -> dict:
    """Section 3.4: where each model's σ² lies, and what Algorithm 1 gains over the variance
    learned from the first epoch (8-bit nats, FID from q̂)."""
    ours, scratch = n["median"]  # Algorithm 1's model, then the one learned from the first epoch
    return {"median_ours": n["median"][ours].mean, "median_scratch": n["median"][scratch].mean,
            "below_floor_scratch": n["below floor"][scratch].text(3),
            "below_grey_scratch": n["below grey level"][scratch].text(3),
            "floor": n["floor"].mean, "discrete_gain": n["discrete gain"].text(1),
            "density_gain": n["density gain"].text(1), "fid_gain": n["fid gain"].text(1),
            "fid_kind": n["fid_kind"], "collapsed": listed(n["collapsed"]),
            "collapsed_samples": listed(n["collapsed samples"])}


def appendix(n: dict) -> dict:
    """Appendix D's samples: only which models collapsed."""
    return {"collapsed": listed(n["collapsed"])}


def beyond(n: dict) -> dict:
    """Bits per dimension, what stage 2 buys, how σ is learned and how far Adam can move it."""
    reach = n["sigma2_reach"]
    bpd = n["bpd"]
    return {"bpd_pixel": bpd["ours, pixel σ²"].text(3), "bpd_dataset": bpd["ours, dataset σ²"].text(3),
            "bpd_mean_image": n["mean image"]["bpd"].text(3), "d_log_255": n["d"] * math.log(255),
            "stage2_density": n["stage2 density"].text(1), "stage2_discrete": n["stage2 discrete"].text(1),
            "stage2_fid_qhat": n["stage2 fid qhat"].text(2), "collapsed": listed(n["collapsed"]),
            "collapsed_samples": listed(n["collapsed samples"]),
            "sigma_over_log_sigma": n["sigma over log sigma"].text(1),
            "closed_over_sigma": n["closed over sigma"].text(1),
            "reach_sigma2_sigma": reach["sigma"], "reach_sigma2_log_sigma": reach["log_sigma"],
            "steps_per_epoch": n["steps_per_epoch"]}
